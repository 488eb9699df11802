"""Verified copies of stored files: written atomically, checked against the recorded checksum."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hounsfield.errors import ArchiveError
from hounsfield.storage.atomic import file_checksum, remove_quietly, write_atomic

CHUNK = 1 << 20


class CopyMismatch(ArchiveError):
    """A copied file does not match the checksum recorded for it."""


def chunks(path: Path) -> Iterator[bytes]:
    """A file's bytes, 1 MiB at a time."""
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def copy_verified(src: Path, dst: Path, checksum: str, fsync: bool) -> bool:
    """Make `dst` a copy of `src` whose checksum is `checksum`; False when it already was.

    CopyMismatch (and nothing left at `dst`) when the copy does not match: `src` is damaged."""
    if dst.exists() and file_checksum(dst) == checksum:
        return False
    write_atomic(dst, chunks(src), fsync=fsync)
    if file_checksum(dst) != checksum:
        remove_quietly(dst)
        raise CopyMismatch(f"copy of {src} to {dst} does not match its checksum")
    return True


def remove_stale_temps(root: Path, folders: set[str]) -> None:
    """Temporary files a killed copy left in a study's folders on a filesystem (only work under
    the study lock writes there)."""
    for folder in folders:
        for temp in (root / folder).glob(".*.tmp"):
            temp.unlink(missing_ok=True)
