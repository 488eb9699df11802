"""The C-STORE send path from stored files: what goes on the wire is what pynetdicom sends, the
File Meta is read as pydicom reads it, and the reactor stays stopped between requests."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydicom import dcmread
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dsutils import split_dataset

from hounsfield.dicomnet import checkpoint, evented, fastsend, filemeta, rawsend, storesend
from tests.data import PYDICOM_FILES, local
from tests.dcmtk import free_port

FILES = ["CT_small.dcm", "MR_small_implicit.dcm", "JPEG2000.dcm"]
MAX_PDU = 16384  # small: every dataset here crosses several PDUs


class _Tap:
    """A TCP relay to a server that keeps the bytes the client sent."""

    def __init__(self, target: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target, self.sent = target, bytearray()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._pipe, args=(server, client, None), daemon=True).start()
        self._pipe(client, server, self.sent)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, keep: bytearray | None) -> None:
        with src, dst, contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                if keep is not None:
                    keep += data
                dst.sendall(data)

    def p_data(self) -> list[bytes]:
        """The P-DATA-TF PDUs the client sent, whole."""
        pdus, at = [], 0
        while at + 6 <= len(self.sent):
            kind, length = self.sent[at], struct.unpack_from(">I", self.sent, at + 2)[0]
            if kind == 4:
                pdus.append(bytes(self.sent[at : at + 6 + length]))
            at += 6 + length
        return pdus


@pytest.fixture
def scp() -> Iterator[tuple[int, list[Any]]]:
    """A pynetdicom storage SCP taking every test file's class and syntax; what it stored."""
    seen: list[Any] = []
    ae = AE("STORESCP")
    ae.maximum_pdu_size = MAX_PDU
    for name in FILES:
        meta = dcmread(local(name), stop_before_pixels=True).file_meta
        ae.add_supported_context(meta.MediaStorageSOPClassUID, [meta.TransferSyntaxUID])

    def on_store(event: Any) -> int:
        seen.append(event.request.AffectedSOPInstanceUID)
        return 0

    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    yield port, seen
    server.shutdown()


def _associate(port: int, path: Path) -> Association:
    meta = dcmread(path, stop_before_pixels=True).file_meta
    ae = AE("SENDER")
    ae.add_requested_context(meta.MediaStorageSOPClassUID, [meta.TransferSyntaxUID])
    assoc = ae.associate("127.0.0.1", port, ae_title="STORESCP")
    assert assoc.is_established
    return assoc


def _stored(path: Path) -> rawsend.StoredFile:
    ds = dcmread(path, stop_before_pixels=True)
    return rawsend.StoredFile(path, ds.SOPClassUID, ds.SOPInstanceUID)


@pytest.mark.parametrize("name", FILES)
def test_the_file_meta_is_read_as_pydicom_reads_it(name: str) -> None:
    path = local(name)
    meta = filemeta.read_meta(path)
    theirs, offset = split_dataset(path)
    assert meta == filemeta.FileMeta(
        offset,
        str(theirs.MediaStorageSOPClassUID),
        str(theirs.MediaStorageSOPInstanceUID),
        str(theirs.TransferSyntaxUID),
    )


def test_every_file_it_reads_agrees_with_pydicom_and_the_rest_is_left_to_it() -> None:
    read = 0
    for path in sorted(PYDICOM_FILES.glob("*.dcm")):
        try:
            meta = filemeta.read_meta(path)
        except OSError:
            continue
        if meta is None:
            continue
        theirs, offset = split_dataset(path)
        assert (meta.offset, meta.transfer_syntax) == (offset, theirs.TransferSyntaxUID), path
        read += 1
    assert read > 40
    assert filemeta.read_meta(local("no_meta_group_length.dcm")) is None
    assert filemeta.read_meta(local("no_meta.dcm")) is None
    assert filemeta.parse(b"\0" * 128 + b"DICM" + b"\2\0\0\0UL\4\0" + b"\xff" * 4) is None


@pytest.mark.parametrize("name", FILES)
def test_the_bytes_on_the_wire_are_pynetdicoms(
    name: str, scp: tuple[int, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same C-STORE through this path and through pynetdicom's own (its send_c_store
    from the path, its own message encoder): the same P-DATA-TF PDUs, byte for byte."""
    port, seen = scp
    path = local(name)
    ours, theirs = _Tap(port), _Tap(port)
    taken: list[Path] = []
    send_file = storesend.send_file

    def spy(assoc: Association, path: Path, *args: Any, **kwargs: Any) -> Any:
        taken.append(path)
        return send_file(assoc, path, *args, **kwargs)

    monkeypatch.setattr(storesend, "send_file", spy)
    assoc = _associate(ours.port, path)
    assert assoc.send_c_store(_stored(path), msg_id=5).Status == 0
    assoc.release()
    assert taken == [path]
    with monkeypatch.context() as m:
        m.setattr(DIMSEServiceProvider, "send_msg", fastsend._original_send_msg)
        assoc = _associate(theirs.port, path)
        assert rawsend._send_c_store(assoc, path, msg_id=5).Status == 0
        assoc.release()
    assert len(seen) == 2 and seen[0] == seen[1]
    assert len(ours.p_data()) >= 2  # the command, then the dataset
    assert ours.p_data() == theirs.p_data()


def test_consecutive_stores_keep_the_reactor_stopped_then_let_it_go(
    scp: tuple[int, list[Any]],
) -> None:
    port, seen = scp
    path = local("CT_small.dcm")
    assoc = _associate(port, path)
    gate = assoc._reactor_checkpoint
    assert isinstance(gate, checkpoint.Checkpoint)
    for _ in range(5):
        assert assoc.send_c_store(_stored(path)).Status == 0
        assert gate._parked and not gate.is_set()  # lingering for the next request
    time.sleep(storesend.LINGER + 3 * checkpoint.TICK)
    assert not gate._parked and gate.is_set()
    assoc.release()  # pynetdicom's own pause, on this checkpoint
    assert assoc.is_released and len(seen) == 5


def test_a_peer_abort_while_lingering_is_noticed(scp: tuple[int, list[Any]]) -> None:
    port, _ = scp
    path = local("CT_small.dcm")
    tap = _Tap(port)
    assoc = _associate(tap.port, path)
    assert assoc.send_c_store(_stored(path)).Status == 0
    gate = assoc._reactor_checkpoint
    assert isinstance(gate, checkpoint.Checkpoint) and gate._parked
    gate.linger(60)  # much longer than the test waits
    tap.listener.close()
    assoc.dul.socket.socket.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    deadline = time.monotonic() + 2
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not assoc.is_established


def test_a_dul_busy_with_work_is_not_sent_wake_ups() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    dul = SimpleNamespace(_selecting=False, _woken=False, _wake_w=theirs)
    try:
        evented.EventedDUL.wake(dul)  # type: ignore[arg-type]
        with pytest.raises(BlockingIOError):
            ours.recv(1)  # busy: nothing written
        dul._selecting = True
        evented.EventedDUL.wake(dul)  # type: ignore[arg-type]
        evented.EventedDUL.wake(dul)  # type: ignore[arg-type]
        assert ours.recv(16) == b"\0"  # waiting: one wake-up, not one per message
    finally:
        ours.close()
        theirs.close()


def test_a_stale_not_paused_write_does_not_hold_a_sender(scp: tuple[int, list[Any]]) -> None:
    """pynetdicom serves an N-EVENT-REPORT on a thread of its own, which writes "not paused"
    when it ends, possibly while the reactor is stopped: a release still goes through."""
    port, _ = scp
    path = local("CT_small.dcm")
    assoc = _associate(port, path)
    assert assoc.send_c_store(_stored(path)).Status == 0
    writer = threading.Thread(target=setattr, args=(assoc, "_is_paused", False))
    writer.start()
    writer.join()
    releasing = threading.Thread(target=assoc.release, daemon=True)
    releasing.start()
    releasing.join(timeout=5)
    assert assoc.is_released


def _wait_for(check: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.002)
    return bool(check())


@pytest.mark.parametrize("chunk", [fastsend.CHUNK, 1000])
def test_the_next_file_goes_on_the_wire_once_the_one_before_is_answered(
    scp: tuple[int, list[Any]], chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retrieve's files, each told which follows it: the next request is sent as soon as
    the response before it came, before its own `send_c_store`, which only reads its
    response; the bytes are those of the same stores sent one by one. A file larger than
    one CHUNK is not built ahead but read in pieces as it is sent."""
    monkeypatch.setattr(fastsend, "CHUNK", chunk)
    built: list[int] = []
    send_encoded = fastsend.send_encoded
    monkeypatch.setattr(
        fastsend,
        "send_encoded",
        lambda dimse, data: (built.append(len(data)), send_encoded(dimse, data)),
    )
    port, seen = scp
    path = local("CT_small.dcm")
    ours, theirs = _Tap(port), _Tap(port)
    assoc = _associate(ours.port, path)
    files = [_stored(path) for _ in range(4)]
    for this, that in itertools.pairwise(files):
        this.then(that)
    for number, stored in enumerate(files):
        assert assoc.send_c_store(stored, msg_id=7 + number).Status == 0
        if number < 3:  # the following one arrives unasked
            assert _wait_for(lambda n=number: len(seen) == n + 2)
    assoc.release()
    assert len(seen) == 4
    # the third and fourth were built while the peer stored the one before (the second was
    # sent ahead of a first store that was not itself sent ahead)
    assert len(built) == (2 if chunk > path.stat().st_size else 0)
    assoc = _associate(theirs.port, path)
    for number in range(4):
        assert assoc.send_c_store(_stored(path), msg_id=7 + number).Status == 0
    assoc.release()
    assert len(seen) == 8
    assert ours.p_data() == theirs.p_data()


def test_a_file_that_cannot_be_sent_ahead_fails_in_its_own_turn(
    scp: tuple[int, list[Any]], tmp_path: Path
) -> None:
    port, seen = scp
    first, second = tmp_path / "1.dcm", tmp_path / "2.dcm"
    shutil.copy(local("CT_small.dcm"), first)
    shutil.copy(local("CT_small.dcm"), second)
    assoc = _associate(port, first)
    this, that = _stored(first), _stored(second)
    this.then(that)
    assert that.meta is not None
    second.unlink()  # between the retrieve's look-up and its send
    assert assoc.send_c_store(this).Status == 0
    with pytest.raises(FileNotFoundError):
        assoc.send_c_store(that)
    assert assoc.is_established
    assert assoc.send_c_store(_stored(first)).Status == 0
    assoc.release()
    assert len(seen) == 2
