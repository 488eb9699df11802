"""Send stored files from C-GET and C-MOVE as they are on disk, without decoding them.

pynetdicom's C-GET and C-MOVE service classes take only Dataset yields and re-encode
each one, which is slow and can change bytes. The handlers yield a `StoredFile` instead:
a Dataset that names its file. `Association.send_c_store` is wrapped once so that a
StoredFile is sent from its path, which pynetdicom streams in PDU-sized chunks
(`_config.STORE_SEND_CHUNKED_DATASET`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import _config
from pynetdicom.association import Association

_config.STORE_SEND_CHUNKED_DATASET = True


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


def _send_stored(self: Association, dataset: Any, *args: Any, **kwargs: Any) -> Dataset:
    if isinstance(dataset, StoredFile):
        dataset = dataset.stored_path
    return _send_c_store(self, dataset, *args, **kwargs)


if not getattr(Association.send_c_store, "_sends_stored_files", False):
    _send_stored._sends_stored_files = True  # type: ignore[attr-defined]
    Association.send_c_store = _send_stored  # type: ignore[method-assign]
