"""Can this node write to its storage: a small file written, fsynced and removed on each
writable filesystem (a missing mount, a read-only remount or a dead NAS all show)."""

from __future__ import annotations

import os

from hounsfield.archive.context import Archive


def probe_storage(archive: Archive, node_name: str) -> str:
    """An empty string when every enabled, writable filesystem takes a write; else what
    failed."""
    try:
        candidates = [fs for fs in archive.filesystems.listed() if fs.enabled and not fs.read_only]
    except Exception as exc:
        return f"cannot list filesystems: {str(exc).splitlines()[0][:200]}"
    name = f".probe-{''.join(c if c.isalnum() else '_' for c in node_name)}-{os.getpid()}"
    for fs in candidates:
        path = fs.path / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"hounsfield")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.unlink(path)
        except OSError as exc:
            return f"storage {fs.path} not writable: {exc.strerror or exc}"
    return ""
