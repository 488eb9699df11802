"""Fuzzing the header scanners: the dataset scanner, the File Meta reader and the C-STORE
command decoder answer a result or None, never raise, and agree with pydicom when they answer."""

from __future__ import annotations

import struct
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filereader import _read_file_meta_info, read_dataset
from pydicom.uid import UID

from bench.reliability.mutate import Source
from hounsfield.catalog.parse import DEFLATED, INDEX_TAGS, parse_header
from hounsfield.catalog.scan import HEADER_END, scan
from hounsfield.dicomnet.fastrecv import decode_command
from hounsfield.dicomnet.filemeta import read_meta
from hounsfield.errors import InvalidDataset
from tests.reliability.fuzzing import FUZZ, datasets, mutated, part10_bodies


def _pydicom_header(data: bytes, implicit: bool, little: bool) -> tuple[dict[int, bytes], int]:
    """The wanted top-level raw values and the header's end, as pydicom reads them."""
    fp = BytesIO(data)
    ds = read_dataset(fp, implicit, little, stop_when=lambda tag, _vr, _len: tag >= HEADER_END)
    values: dict[int, Any] = {}
    for tag in INDEX_TAGS:
        if tag in ds:
            values[tag] = _value(ds.get_item(tag))
    return values, fp.tell()


def _value(elem: RawDataElement | DataElement) -> Any:
    """The value as pydicom converts it (some it converts while reading), or the kind of
    error converting it raises."""
    if isinstance(elem, DataElement):
        return elem.value
    try:
        return convert_raw_data_element(elem).value
    except Exception as exc:
        return type(exc)


@FUZZ
@given(datasets(), st.booleans())
def test_the_dataset_scanner_answers_as_pydicom_or_declines(
    case: tuple[Source, bytes], other_encoding: bool
) -> None:
    source, data = case
    syntax = UID(source.transfer_syntax)
    implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
    if other_encoding:
        implicit = not implicit
    found = scan(data, implicit, little, INDEX_TAGS)
    if found is None:
        return  # declined: pydicom reads these bytes, under parse_header's refusal
    try:
        values, end = _pydicom_header(data, implicit, little)
    except Exception:  # pydicom refuses what it converts while reading (the character set)
        if not other_encoding and source.transfer_syntax != DEFLATED:
            with pytest.raises(InvalidDataset):  # and so does the archive's parser
                parse_header(data, source.transfer_syntax)
        return
    assert found.end == end
    scanned = {int(t): _value(e) for t, e in found.elements.items()}
    assert scanned == values


@FUZZ
@given(part10_bodies())
def test_the_file_meta_reader_answers_as_pydicom_or_declines(body: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".dcm") as fh:
        fh.write(body)
        fh.flush()
        found = read_meta(Path(fh.name))
    if found is None:
        return
    assert found.offset <= len(body)
    fp = BytesIO(body)
    fp.seek(132)
    meta = _read_file_meta_info(fp)
    assert found.offset == fp.tell()
    assert found.sop_class == _raw(meta, 0x00020002)
    assert found.sop_instance == _raw(meta, 0x00020003)
    assert found.transfer_syntax == _raw(meta, 0x00020010)


def _raw(meta: Dataset, tag: int) -> str:
    """An element's value bytes as read, without the padding either reader removes."""
    elem = meta.get_item(tag)
    value = elem.value if isinstance(elem, RawDataElement) else b""
    return (value or b"").rstrip(b"\0 ").decode("ascii")


def _element(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def _command() -> bytes:
    """A C-STORE-RQ command set as storescu sends it (Implicit VR Little Endian)."""
    body = b"".join(
        (
            _element(0x00000002, b"1.2.840.10008.5.1.4.1.1.2\0"),
            _element(0x00000100, struct.pack("<H", 0x0001)),
            _element(0x00000110, struct.pack("<H", 7)),
            _element(0x00000700, struct.pack("<H", 0)),
            _element(0x00000800, struct.pack("<H", 0x0000)),
            _element(0x00001000, b"1.2.3.4.5.6.7.8.9\0"),
        )
    )
    return _element(0x00000000, struct.pack("<I", len(body))) + body


COMMAND = _command()


def test_the_command_decoder_reads_the_unmutated_command() -> None:
    decoded = decode_command(COMMAND)
    assert decoded is not None
    primitive, has_dataset = decoded
    assert primitive.MessageID == 7 and has_dataset
    assert primitive.AffectedSOPInstanceUID == "1.2.3.4.5.6.7.8.9"


@FUZZ
@given(st.one_of(mutated(COMMAND), st.binary(max_size=256)))
def test_the_command_decoder_answers_or_declines(raw: bytes) -> None:
    decoded = decode_command(memoryview(raw))
    if decoded is not None:
        primitive, has_dataset = decoded
        assert isinstance(has_dataset, bool)
        assert (primitive.MessageID is None) != (primitive.MessageIDBeingRespondedTo is None)


def test_a_command_with_a_non_ascii_uid_goes_to_pynetdicom() -> None:
    """A non-ASCII byte in a UID raised UnicodeDecodeError in the receive fast path."""
    at = COMMAND.index(b"1.2.840")
    damaged = COMMAND[:at] + b"\xb1" + COMMAND[at + 1 :]
    assert decode_command(memoryview(damaged)) is None
