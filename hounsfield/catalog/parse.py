"""Read the index attributes of a received dataset without touching its pixel data."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filereader import data_element_generator, read_dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

from hounsfield.catalog.scan import HEADER_END, Scan, scan, tail_fits
from hounsfield.errors import InvalidDataset
from hounsfield.uids import check_uid

DEFLATED = "1.2.840.10008.1.2.1.99"


@dataclass(frozen=True)
class Encoding:
    """How a dataset's bytes are encoded."""

    implicit_vr: bool
    little_endian: bool

    @classmethod
    def of(cls, transfer_syntax: str) -> Encoding:
        """The encoding of a transfer syntax (deflated reads as inflated explicit VR LE)."""
        uid = UID(transfer_syntax)
        if not uid.is_transfer_syntax:
            raise InvalidDataset(f"unknown transfer syntax {transfer_syntax!r}")
        return cls(implicit_vr=uid.is_implicit_VR, little_endian=uid.is_little_endian)


@dataclass(frozen=True)
class Parsed:
    """The header of a received object: its dataset (no pixel data) and raw bytes.

    The dataset may hold only the INDEX_KEYWORDS attributes (see parse_header)."""

    dataset: Dataset
    header: bytes
    encoding: Encoding


def _stop_at_pixels(tag: BaseTag, _vr: str | None, _length: int) -> bool:
    return tag >= HEADER_END


def parse_header(data: bytes, transfer_syntax: str) -> Parsed:
    """Parse the dataset bytes (no File Meta) up to Pixel Data.

    The scanner keeps just the INDEX_KEYWORDS elements; when it declines unusual bytes,
    pydicom reads the whole header as before."""
    encoding = Encoding.of(transfer_syntax)
    if transfer_syntax == DEFLATED:
        try:
            data = zlib.decompress(data, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise InvalidDataset(f"deflated dataset cannot be inflated: {exc}") from exc
    try:
        found = scan(data, encoding.implicit_vr, encoding.little_endian, INDEX_TAGS)
        ds, end = _read(data, encoding) if found is None else _scanned(found, encoding)
        if found is None or not tail_fits(data, end, encoding.implicit_vr, encoding.little_endian):
            _check_whole(data, 0 if found is None else end, encoding)
        # Read the attributes the index needs as the index will, so a corrupt value (one read
        # as a sequence whose items hold unknown VRs, say) fails here.
        for keyword in INDEX_KEYWORDS:
            text(ds, keyword)
    except InvalidDataset:
        raise
    except Exception as exc:  # pydicom raises many kinds on corrupt input
        raise InvalidDataset(f"dataset cannot be parsed: {exc}") from exc
    return Parsed(dataset=ds, header=data[:end], encoding=encoding)


def _read(data: bytes, encoding: Encoding) -> tuple[Dataset, int]:
    """The whole header read by pydicom, and where it ends."""
    fp = BytesIO(data)
    ds = read_dataset(fp, encoding.implicit_vr, encoding.little_endian, stop_when=_stop_at_pixels)
    if len(ds) == 0:
        raise InvalidDataset("dataset is empty")
    return ds, fp.tell()


def _check_whole(data: bytes, pos: int, encoding: Encoding) -> None:
    """Refuse a dataset whose top-level elements from pos on do not walk to its end as
    pydicom reads them (a value running past the end, pixel data without its delimiter):
    pydicom would read such a file as empty, DCMTK and dcm4che not at all."""
    fp = BytesIO(data)
    fp.seek(pos)
    size = len(data)
    try:
        # defer_size=0 skips over values instead of copying them; a skip past the end shows.
        for element in data_element_generator(
            fp, encoding.implicit_vr, encoding.little_endian, defer_size=0
        ):
            if fp.tell() > size:
                raise InvalidDataset(f"element {element.tag} runs past the end of the dataset")
    except EOFError as exc:
        raise InvalidDataset(f"dataset ends early: {exc}") from exc


def _scanned(found: Scan, encoding: Encoding) -> tuple[Dataset, int]:
    """The scanned index elements as a dataset like the one read_dataset builds."""
    elements: dict[BaseTag, RawDataElement | DataElement] = dict(found.elements)
    ds = Dataset(elements, parent_encoding=default_encoding)
    charset = found.elements.get(BaseTag(0x00080005))
    character_encoding = (
        default_encoding
        if charset is None
        else convert_encodings(convert_raw_data_element(charset).value)
    )
    ds.set_original_encoding(encoding.implicit_vr, encoding.little_endian, character_encoding)
    return ds, found.end


def decode_header(header: bytes, implicit_vr: bool, little_endian: bool) -> Dataset:
    """The dataset stored in an instance's header column."""
    return read_dataset(BytesIO(header), implicit_vr, little_endian)


INDEX_KEYWORDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "StudyDescription",
    "ReferringPhysicianName",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "BodyPartExamined",
    "SeriesDate",
    "SeriesTime",
    "InstanceNumber",
    "NumberOfFrames",
    "SpecificCharacterSet",
)


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return tag


INDEX_TAGS = frozenset(_tag(keyword) for keyword in INDEX_KEYWORDS)


def text(ds: Dataset, keyword: str) -> str:
    """An attribute as index text: multi-values joined by backslash, '' when absent, NUL
    characters left out (a corrupt value may hold them; PostgreSQL refuses them in text)."""
    value: Any = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value).replace("\0", "")
    return str(value).replace("\0", "").strip()


def normalize_date(value: str) -> str:
    """A DA value as YYYYMMDD (the old YYYY.MM.DD form is accepted)."""
    return value.replace(".", "").strip()[:8]


def normalize_time(value: str) -> str:
    """A TM value padded to at least HHMMSS so that text order is time order."""
    value = value.replace(":", "").strip()
    if not value:
        return ""
    head, _, fraction = value.partition(".")
    head = (head + "0000")[:6] if len(head) < 6 else head[:6]
    return f"{head}.{fraction}" if fraction else head


def required_uids(ds: Dataset) -> tuple[str, str, str, str]:
    """SOP class, SOP instance, study and series UIDs, validated."""
    return (
        check_uid(ds.get("SOPClassUID"), "SOPClassUID"),
        check_uid(ds.get("SOPInstanceUID"), "SOPInstanceUID"),
        check_uid(ds.get("StudyInstanceUID"), "StudyInstanceUID"),
        check_uid(ds.get("SeriesInstanceUID"), "SeriesInstanceUID"),
    )
