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
    """A placeholder dataset for a stored Part-10 file, sent from disk."""

    def __init__(self, path: Path, sop_class: str, sop_instance: str) -> None:
        super().__init__()
        self.SOPClassUID = sop_class
        self.SOPInstanceUID = sop_instance
        object.__setattr__(self, "_stored_path", path)

    @property
    def stored_path(self) -> Path:
        """Where the file is."""
        return object.__getattribute__(self, "_stored_path")  # type: ignore[no-any-return]


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
        dataset = dataset.stored_path
        meta = filemeta.read_meta(dataset)
        if meta is not None:
            return storesend.send_file(self, dataset, meta, *args, **kwargs)
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


def install() -> None:
    """Send StoredFile placeholders from their files (idempotent)."""
    _config.STORE_SEND_CHUNKED_DATASET = True
    if not getattr(Association.send_c_store, "_sends_stored_files", False):
        _send_stored._sends_stored_files = True  # type: ignore[attr-defined]
        Association.send_c_store = _send_stored  # type: ignore[method-assign]
