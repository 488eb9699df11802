"""Read the index attributes of a received dataset without touching its pixel data."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import dictionary_VR, tag_for_keyword
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
    """The header of a received object: its dataset (no pixel data), raw bytes, and the
    index text of each INDEX_KEYWORDS attribute (`values`, as `text` reads it; those in
    `plain` read straight from their bytes).

    The dataset may hold only the INDEX_KEYWORDS attributes (see parse_header)."""

    dataset: Dataset
    header: bytes
    encoding: Encoding
    values: Mapping[str, str]
    plain: frozenset[str]


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
        values, plain = _index_values(ds, {} if found is None else found.elements)
    except InvalidDataset:
        raise
    except Exception as exc:  # pydicom raises many kinds on corrupt input
        raise InvalidDataset(f"dataset cannot be parsed: {exc}") from exc
    return Parsed(ds, data[:end], encoding, values, plain)


def _index_values(
    ds: Dataset, scanned: Mapping[BaseTag, RawDataElement]
) -> tuple[dict[str, str], frozenset[str]]:
    """The index text of each INDEX_KEYWORDS attribute, and which were plain: a plain value
    is read straight from its scanned bytes, any other through pydicom (`text`)."""
    values: dict[str, str] = {}
    plain: list[str] = []
    for keyword, tag, vr in _INDEX_ELEMENTS:
        value = _plain_text(scanned.get(tag), vr) if scanned else None
        if value is None:
            values[keyword] = text(ds, keyword)
        else:
            values[keyword] = value
            plain.append(keyword)
    return values, frozenset(plain)


def _plain_text(element: RawDataElement | None, vr: str) -> str | None:
    """What `text` gives for a scanned element of the dictionary's VR (any string VR of the
    index) holding one ASCII value without escape sequences, embedded NULs or (in a person
    name) component groups: pydicom reads such a value as its characters, trimmed. None for
    any other: pydicom shall read it."""
    if element is None:
        return ""  # the scan keeps every wanted top-level element: the attribute is absent
    value = element.value
    if element.VR not in (None, vr) or not isinstance(value, bytes) or not value.isascii():
        return None
    if b"\\" in value or b"\x1b" in value or b"\0" in value.rstrip(b"\0 "):
        return None
    if vr == "PN" and b"=" in value:
        return None  # pydicom drops empty trailing component groups
    return value.decode("ascii").replace("\0", "").strip()


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
# Keyword, tag and dictionary VR of each index attribute (all string VRs, IS included).
_INDEX_ELEMENTS = tuple(
    (keyword, BaseTag(_tag(keyword)), dictionary_VR(_tag(keyword))) for keyword in INDEX_KEYWORDS
)


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


def required_uids(parsed: Parsed) -> tuple[str, str, str, str]:
    """SOP class, SOP instance, study and series UIDs, validated (a plain value as read; any
    other as pydicom reads it, so an embedded NUL is refused rather than left out)."""

    def uid(keyword: str) -> str:
        if keyword in parsed.plain:
            return check_uid(parsed.values[keyword], keyword)
        return check_uid(parsed.dataset.get(keyword), keyword)

    return (
        uid("SOPClassUID"),
        uid("SOPInstanceUID"),
        uid("StudyInstanceUID"),
        uid("SeriesInstanceUID"),
    )
