"""Helpers for the mirror and verification tests: a mirror beside the default filesystem, the
file rows of an instance, and damage done to a stored file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance
from hounsfield.storage.atomic import file_checksum
from hounsfield.storage.tiers import add_filesystem


def add_mirror(archive: Archive, root: Path, mode: str = "sync") -> Path:
    """Make `root` the mirror of the archive's default filesystem; its resolved path."""
    add_filesystem(archive.engine, root, mirror_of=archive.settings.storage_dir, mirror_mode=mode)
    archive.filesystems.invalidate()
    return root.resolve()


@dataclass(frozen=True)
class Row:
    """One file row of an instance and where its file is."""

    root: Path
    path: str
    size: int
    checksum: str
    transfer_syntax: str
    verified_at: datetime | None

    @property
    def file(self) -> Path:
        """The file on disk."""
        return self.root / self.path

    def intact(self) -> bool:
        """The file is there with its indexed size and checksum."""
        return (
            self.file.is_file()
            and self.file.stat().st_size == self.size
            and file_checksum(self.file) == self.checksum
        )


def rows_of(archive: Archive, sop: str) -> dict[Path, Row]:
    """The file rows of the instance `sop`, by filesystem root."""
    with db.read(archive.engine) as conn:
        found = conn.execute(
            select(
                filesystem.c.path,
                file.c.path,
                file.c.size,
                file.c.checksum,
                file.c.transfer_syntax,
                file.c.verified_at,
            )
            .join(filesystem, filesystem.c.pk == file.c.filesystem_pk)
            .join(instance, instance.c.pk == file.c.instance_pk)
            .where(instance.c.sop_iuid == sop)
        ).all()
    return {Path(r[0]): Row(Path(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in found}


def flip_bytes(path: Path, at: int = -64) -> None:
    """Corrupt a file in place: invert a few bytes, size unchanged."""
    data = bytearray(path.read_bytes())
    for i in range(at, at + 8):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def block(root: Path) -> None:
    """Make a filesystem folder unusable even for root: replace it by a plain file."""
    for child in sorted(root.rglob("*"), reverse=True):
        child.unlink() if child.is_file() else child.rmdir()
    root.rmdir()
    root.write_bytes(b"not a folder")
