"""What a C-GET brings back, written into a folder as Part-10 files named by SOP Instance UID."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID

from hounsfield.dicomnet.incoming import Received
from hounsfield.errors import InvalidUID
from hounsfield.uids import is_valid_uid

PREAMBLE = b"\0" * 128 + b"DICM"


class Folder:
    """Writes each received object to `<folder>/<SOP Instance UID>.dcm` (atomically; an
    object received again replaces its file)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.written: dict[str, Path] = {}
        self._lock = threading.Lock()

    def take(self, received: Received) -> None:
        """Write one object (the C-GET's store handler)."""
        if not is_valid_uid(received.sop_instance) or not is_valid_uid(received.sop_class):
            raise InvalidUID(f"invalid UID in a C-STORE: {received.sop_instance!r}")
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(received.sop_class)
        meta.MediaStorageSOPInstanceUID = UID(received.sop_instance)
        meta.TransferSyntaxUID = UID(received.transfer_syntax)
        buf = DicomBytesIO()
        buf.is_little_endian, buf.is_implicit_VR = True, False
        write_file_meta_info(buf, meta, enforce_standard=True)
        path = self.folder / f"{received.sop_instance}.dcm"
        partial = path.with_name(f".{path.name}.part")
        with open(partial, "wb") as fh:
            fh.write(PREAMBLE + buf.getvalue())
            fh.write(received.data)
        os.replace(partial, path)
        with self._lock:
            self.written[received.sop_instance] = path
