"""Send stored files (forwarding, C-GET and C-MOVE) as they are on disk, without decoding them.

pynetdicom's C-GET and C-MOVE service classes take only Dataset yields and re-encode
each one, which is slow and can change bytes. The handlers (and `scu.PeerAssociation.store`)
give a `StoredFile` instead: a Dataset that names its file. `Association.send_c_store` is
wrapped once so that a StoredFile is sent from its path: by `storesend` when `filemeta` reads
its File Meta (the archive's own files), otherwise by pynetdicom from the path
(`_config.STORE_SEND_CHUNKED_DATASET`); either way `fastsend` reads the file in pieces.

The wrapper also closes a race in pynetdicom's requestor side (the C-MOVE sub-association):
its reactor thread is paused with a flag that can read "paused" just after the reactor passed
its checkpoint, and the reactor then takes the C-STORE response the sender is waiting for
("Received unexpected C-STORE service message", then a DIMSE timeout and an aborted
association). While another thread sends, the reactor's non-blocking reads return nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import _config
from pynetdicom.association import Association

from hounsfield.dicomnet import filemeta, storesend


class StoredFile(Dataset):
    """A placeholder dataset for a stored Part-10 file, sent from disk.

    A retrieve that knows which file it sends after this one says so (`then`): when this
    one's response has come, that one's request goes on the wire at once, and the peer
    stores it while the service answers the requestor and finds the file after it
    (`_send_stored`). Its own `send_c_store` then only reads the response."""

    def __init__(
        self, path: Path, sop_class: str, sop_instance: str, size: int | None = None
    ) -> None:
        super().__init__()
        self.SOPClassUID = sop_class
        self.SOPInstanceUID = sop_instance
        object.__setattr__(self, "_stored_path", path)
        object.__setattr__(self, "_size", size)
        object.__setattr__(self, "_meta", _UNREAD)
        object.__setattr__(self, "_following", None)
        object.__setattr__(self, "_error", None)
        object.__setattr__(self, "_encoded", None)

    @property
    def stored_path(self) -> Path:
        """Where the file is."""
        return object.__getattribute__(self, "_stored_path")  # type: ignore[no-any-return]

    @property
    def size(self) -> int | None:
        """The file's size in bytes, when the caller knows it (the index does)."""
        return object.__getattribute__(self, "_size")  # type: ignore[no-any-return]

    @property
    def meta(self) -> filemeta.FileMeta | None:
        """The file's File Meta, read once (None: left to pydicom; see `filemeta`)."""
        meta = object.__getattribute__(self, "_meta")
        if meta is _UNREAD:
            meta = filemeta.read_meta(self.stored_path)
            object.__setattr__(self, "_meta", meta)
        return meta  # type: ignore[no-any-return]

    def readable(self) -> bool:
        """Whether the File Meta reads as the archive writes it (one that does not is sent
        by pynetdicom, or fails, in its own turn)."""
        try:
            return self.meta is not None
        except OSError:
            return False

    @property
    def following(self) -> StoredFile | None:
        """The file the retrieve sends next, when known."""
        return object.__getattribute__(self, "_following")  # type: ignore[no-any-return]

    def then(self, following: StoredFile) -> None:
        """Say that `following` is sent right after this one."""
        object.__setattr__(self, "_following", following)


_UNREAD = object()


_send_c_store = Association.send_c_store
_GUARD = "_hounsfield_send_guard"


class _SendGuard:
    """Keeps an association's reactor from reading messages while another thread sends."""

    def __init__(self, assoc: Association) -> None:
        self.lock = threading.Lock()
        self.sending = False
        fetch = assoc.dimse.get_msg

        def get_msg(block: bool = False) -> Any:
            if block or threading.current_thread() is not assoc:
                return fetch(block)
            with self.lock:
                return (None, None) if self.sending else fetch(False)

        assoc.dimse.get_msg = get_msg  # type: ignore[method-assign]


def _send_stored(self: Association, dataset: Any, *args: Any, **kwargs: Any) -> Dataset:
    if isinstance(dataset, StoredFile):
        meta = dataset.meta
        if meta is not None:
            after = storesend.Header(*args, **kwargs).following()  # the next request's
            if storesend.in_flight(self) is dataset:  # sent ahead: only its response is left
                _prepare(self, dataset.following, after)  # while the peer stores this one
                status = storesend.read_response(self)
            else:
                error = object.__getattribute__(dataset, "_error")
                if error is not None:  # sending it ahead failed: this sub-operation fails
                    raise error
                status = storesend.send_file(self, dataset.stored_path, meta, *args, **kwargs)
            if "Status" in status:
                _send_ahead(self, dataset.following, after)
            return status
        dataset = dataset.stored_path
    if threading.current_thread() is self:  # C-GET: the reactor itself is sending
        return _send_c_store(self, dataset, *args, **kwargs)
    guard = getattr(self, _GUARD, None)
    if guard is None:
        guard = _SendGuard(self)
        setattr(self, _GUARD, guard)
    with guard.lock:
        guard.sending = True
    checkpoint: Any = self._reactor_checkpoint
    if hasattr(checkpoint, "pause"):  # stopped without pynetdicom's polling, which finds it so
        checkpoint.pause()
    try:
        return _send_c_store(self, dataset, *args, **kwargs)
    except BaseException:
        checkpoint.set()  # pynetdicom raises some errors before it would resume the reactor
        raise
    finally:
        guard.sending = False


def _prepare(assoc: Association, following: StoredFile | None, header: storesend.Header) -> None:
    """Build `following`'s request now, so that sending it ahead only queues its bytes."""
    meta = following.meta if following is not None else None
    if following is None or meta is None:
        return
    try:
        encoded = storesend.prepare(assoc, following.stored_path, meta, header, following.size)
    except Exception:  # built again when sent, and its error kept then
        return
    object.__setattr__(following, "_encoded", encoded)


def _send_ahead(assoc: Association, following: StoredFile | None, header: storesend.Header) -> None:
    """Put `following`'s request on the wire now; an error is kept for its own turn."""
    if following is None or not assoc.is_established:
        return
    meta = following.meta
    if meta is None:
        return
    encoded = object.__getattribute__(following, "_encoded")
    object.__setattr__(following, "_encoded", None)
    try:
        storesend.send_request(
            assoc, following.stored_path, meta, header, key=following, encoded=encoded
        )
    except Exception as exc:
        object.__setattr__(following, "_error", exc)


def install() -> None:
    """Send StoredFile placeholders from their files (idempotent)."""
    _config.STORE_SEND_CHUNKED_DATASET = True
    if not getattr(Association.send_c_store, "_sends_stored_files", False):
        _send_stored._sends_stored_files = True  # type: ignore[attr-defined]
        Association.send_c_store = _send_stored  # type: ignore[method-assign]
