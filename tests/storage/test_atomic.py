"""Atomic, durable writes: the whole file or nothing, and its checksum, however it is hashed."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hounsfield.storage import atomic


@pytest.mark.parametrize("fsync", [True, False])
@pytest.mark.parametrize("pieces", [0, 1, 3, 9], ids=lambda n: f"{n}-chunks")
def test_checksum_and_size_of_what_landed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool, pieces: int
) -> None:
    """Hashed while the disk flushes (up to OVERLAP_BYTES) or as written (beyond it, or
    without fsync): the checksum is the file's either way."""
    monkeypatch.setattr(atomic, "OVERLAP_BYTES", 5 * 100_000)
    chunks = [os.urandom(100_000) for _ in range(pieces)]
    target = tmp_path / "a" / "b.dcm"
    written = atomic.write_atomic(target, chunks, fsync=fsync)
    content = b"".join(chunks)
    assert target.read_bytes() == content
    assert written.size == len(content)
    assert written.checksum == hashlib.sha256(content).hexdigest()
    assert written.checksum == atomic.file_checksum(target)
    assert [p.name for p in target.parent.iterdir()] == ["b.dcm"]  # no temporary file left


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def failing() -> Iterator[bytes]:
        yield b"x" * 1000
        raise OSError("the source went away")

    target = tmp_path / "c.dcm"
    with pytest.raises(OSError, match="went away"):
        atomic.write_atomic(target, failing())
    assert list(tmp_path.iterdir()) == []


def test_a_forked_child_hashes_with_threads_of_its_own(tmp_path: Path) -> None:
    """The parent's hashing threads are not in a forked child: it must not wait on them."""
    atomic.write_atomic(tmp_path / "parent.dcm", [b"p" * 1000])  # the parent's pool is up
    pid = os.fork()
    if pid == 0:  # the child
        try:
            written = atomic.write_atomic(tmp_path / "child.dcm", [b"c" * 1000])
            os._exit(0 if written.checksum == hashlib.sha256(b"c" * 1000).hexdigest() else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 10
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the child waited on hashing threads that are not in it")
    assert os.waitstatus_to_exitcode(done[1]) == 0
