"""File Meta Information the archive writes in front of every stored dataset."""

from __future__ import annotations

from io import BytesIO

from pydicom.dataset import FileMetaDataset
from pydicom.filereader import _read_file_meta_info
from pydicom.filewriter import write_file_meta_info

from hounsfield import __version__
from hounsfield.errors import InvalidDataset

IMPLEMENTATION_CLASS_UID = "2.25.154064830640358652879646194109826679242"
IMPLEMENTATION_VERSION = f"HOUNSFIELD_{__version__}"[:16]
PREAMBLE = b"\x00" * 128 + b"DICM"


def file_meta_bytes(
    sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str
) -> bytes:
    """Preamble, DICM prefix and the encoded File Meta Information group."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    if source_ae:
        meta.SourceApplicationEntityTitle = source_ae
    buf = BytesIO()
    buf.write(PREAMBLE)
    write_file_meta_info(buf, meta, enforce_standard=True)
    return buf.getvalue()


def split_part10(raw: bytes) -> tuple[FileMetaDataset, bytes]:
    """The File Meta Information and the dataset bytes of a Part-10 file held in memory."""
    if len(raw) < 132 or raw[128:132] != b"DICM":
        raise InvalidDataset("not a DICOM Part-10 file (no DICM prefix)")
    fp = BytesIO(raw)
    fp.seek(132)
    try:
        meta = _read_file_meta_info(fp)
    except Exception as exc:
        raise InvalidDataset(f"File Meta Information cannot be read: {exc}") from exc
    if "TransferSyntaxUID" not in meta:
        raise InvalidDataset("File Meta Information has no Transfer Syntax UID")
    return meta, raw[fp.tell() :]


def dataset_offset(path: str) -> int:
    """Where the dataset starts in a Part-10 file written by the archive."""
    with open(path, "rb") as fh:
        head = fh.read(144)
        if head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
            raise InvalidDataset(f"{path} does not start with a group length")
        return 144 + int.from_bytes(head[140:144], "little")
