"""Atomic, durable file writes: temporary file, fsync, rename, fsync of the folder."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CHECKSUM = "sha256"


@dataclass(frozen=True)
class Written:
    """What landed on disk."""

    size: int
    checksum: str


def write_atomic(target: Path, chunks: Iterable[bytes], *, fsync: bool = True) -> Written:
    """Write `chunks` to `target` so that a crash leaves either nothing or the whole file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    digest = hashlib.new(CHECKSUM)
    size = 0
    try:
        with open(temp, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(target.parent)
    return Written(size=size, checksum=digest.hexdigest())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_checksum(path: Path) -> str:
    """The checksum of a stored file, read in 1 MiB chunks."""
    digest = hashlib.new(CHECKSUM)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def remove_quietly(path: Path) -> None:
    """Remove a file and the empty folders above it up to the filesystem root's children."""
    path.unlink(missing_ok=True)
    parent = path.parent
    for _ in range(3):
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent
