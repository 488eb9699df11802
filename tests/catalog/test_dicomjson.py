"""The metadata document's DICOM JSON, written straight from header bytes, is the JSON pydicom
writes for every real test file, hand-made edge cases and mutated headers."""

from __future__ import annotations

import json
import random
import struct
import warnings
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException
from pydicom.filereader import read_file_meta_info
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from hounsfield.archive.metadata import BULK_THRESHOLD, _pydicom_json, instance_json
from hounsfield.catalog.dicomjson import Unusual, header_json
from hounsfield.catalog.parse import DEFLATED, Encoding, parse_header
from tests.data import dataset_bytes, part10_files
from tests.synth import encode, instance

PREFIX = "studies/1/series/2/instances/3/bulkdata/"


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about odd values in the test files
        yield


def _fast(header: bytes, syntax: str) -> dict[str, Any] | None:
    try:
        return header_json(header, Encoding.of(syntax).little_endian, PREFIX, BULK_THRESHOLD)
    except (Unusual, struct.error):
        return None


def _same(fast: dict[str, Any], header: bytes, syntax: str) -> None:
    slow = _pydicom_json(header, Encoding.of(syntax), PREFIX)
    # Compared as JSON text: 1 and 1.0, NaN, and the order of keys all show.
    assert json.dumps(fast) == json.dumps(slow)


def real_headers() -> Iterator[tuple[str, bytes, str]]:
    for item in part10_files():
        try:
            syntax = str(read_file_meta_info(item.path).TransferSyntaxUID)
            data = dataset_bytes(item.path)
            if syntax == DEFLATED:
                data, syntax = zlib.decompress(data, -zlib.MAX_WBITS), ExplicitVRLittleEndian
            parsed = parse_header(data, syntax)
        except Exception:
            continue
        if not Encoding.of(syntax).implicit_vr:
            yield item.path.name, parsed.header, syntax


def test_every_real_header_gives_pydicoms_json() -> None:
    fast_ones, left = 0, []
    for name, header, syntax in real_headers():
        fast = _fast(header, syntax)
        if fast is None:
            left.append(name)
            continue
        fast_ones += 1
        _same(fast, header, syntax)
    print(f"converted {fast_ones}, left to pydicom: {', '.join(left)}")
    assert fast_ones > 150 and len(left) < 0.1 * fast_ones


def _header(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    """The dataset's stored header (up to Pixel Data) in the transfer syntax."""
    return parse_header(encode(ds) if syntax == ExplicitVRLittleEndian else _big(ds), syntax).header


def _big(ds: Dataset) -> bytes:
    """The dataset in Explicit VR Big Endian, without File Meta."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = False, False
    write_dataset(buf, ds)
    return buf.getvalue()


@pytest.mark.parametrize(
    "attrs",
    [
        pytest.param({}, id="plain"),
        pytest.param(
            {
                "PatientName": "Yamada^Tarou=山田^太郎=やまだ^たろう",
                "SpecificCharacterSet": "ISO_IR 192",
            },
            id="utf8-name-groups",
        ),
        pytest.param(
            {"PatientName": "M\xfcller^Hans", "SpecificCharacterSet": "ISO_IR 100"}, id="latin1"
        ),
        pytest.param({"PatientName": ["A^B", "C^D=E"]}, id="two-names"),
        pytest.param(
            {"ImageType": ["ORIGINAL", "PRIMARY", ""], "StudyDescription": " padded "}, id="strings"
        ),
        pytest.param(
            {
                "PixelSpacing": ["0.5", "0.25"],
                "SliceThickness": "1",
                "WindowCenter": ["40", "-600"],
                "InstanceNumber": "+7",
            },
            id="numbers",
        ),
        pytest.param({"PixelSpacing": ["1e-3", "2.5E2"], "SeriesNumber": " 3"}, id="exponents"),
        pytest.param({"ImagePositionPatient": "1\\\\2"}, id="empty-number-in-list"),
        pytest.param({"SeriesNumber": "1.0"}, id="integral-float-as-IS"),
        pytest.param({"RetrieveAETitle": ["  AE1 ", "AE2"]}, id="ae-spaces"),
        pytest.param({"FrameIncrementPointer": [0x00181063, 0x00181065]}, id="tags"),
        pytest.param(
            {"SmallestImagePixelValue": 0, "LargestImagePixelValue": 4095, "RescaleSlope": "1.0"},
            id="us-and-ds",
        ),
        pytest.param({"ImageComments": "line one\\line two  "}, id="lt"),
        pytest.param({"StudyDescription": ""}, id="empty"),
    ],
)
def test_hand_made_headers_give_pydicoms_json(attrs: dict[str, Any]) -> None:
    ds = instance(**attrs)
    ds.ReferencedImageSequence = [Dataset(), Dataset()]
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3"
    ds.ReferencedImageSequence[1].ReferencedSOPClassUID = "1.2.4"
    inner = Dataset()
    inner.CodeValue = "T-D4000"
    inner.CodeMeaning = "Abdomen"
    ds.AnatomicRegionSequence = [inner]
    ds.RedPaletteColorLookupTableData = bytes(range(256)) * 8  # bulk, inside no sequence
    inner.add_new(0x00091001, "OB", b"\x01\x02")  # inline binary in an item
    for syntax in (ExplicitVRLittleEndian, ExplicitVRBigEndian):
        header = _header(ds.copy(), syntax)
        fast = _fast(header, syntax)
        assert fast is not None
        _same(fast, header, syntax)


@pytest.mark.parametrize(
    "element",
    [
        pytest.param(b"DS\x04\x00abc ", id="ds-not-a-number"),
        pytest.param(b"IS\x04\x001.5 ", id="is-not-an-integer"),
        pytest.param(b"DS\x04\x00nan ", id="ds-nan"),
        pytest.param(b"US\x03\x00abc", id="us-odd-length"),
        pytest.param(b"PN\x08\x00A=B=C=D ", id="four-name-groups"),
        pytest.param(b"LO\x04\x00\xe9t\xe9 ", id="latin1-without-charset"),
    ],
)
def test_odd_values_give_pydicoms_json(element: bytes) -> None:
    """A value the fast way leaves to pydicom: the JSON pydicom writes, or none at all where
    pydicom cannot convert it (and the pydicom path loses the whole header)."""
    base = _header(instance())
    header = base + b"\x29\x00\x10\x10" + element  # (0029,1010), the last element
    fast = _fast(header, ExplicitVRLittleEndian)
    assert fast is not None
    try:
        _same(fast, header, ExplicitVRLittleEndian)
    except BytesLengthException:
        assert "00291010" not in fast
        _same(fast, base, ExplicitVRLittleEndian)


def test_the_document_line_is_the_same_either_way() -> None:
    ds = instance(PixelSpacing=["0", "0"])
    header = _header(ds)
    fast = instance_json(header, ExplicitVRLittleEndian, PREFIX)
    assert "00280030" not in fast and fast["7FE00010"]["vr"] == "OW"
    assert fast["00020010"] == {"vr": "UI", "Value": [ExplicitVRLittleEndian]}


def test_mutated_headers_give_pydicoms_json_or_go_to_pydicom() -> None:
    rng = random.Random(11)
    headers = [(h, s) for _n, h, s in real_headers()]
    taken = 0
    for _ in range(1500):
        header, syntax = rng.choice(headers)
        data = bytearray(header)
        for _ in range(rng.randint(1, 4)):
            spot = rng.randrange(len(data))
            data[spot] = rng.randrange(256)
        fast = _fast(bytes(data), syntax)
        if fast is None:
            continue
        try:
            slow = _pydicom_json(bytes(data), Encoding.of(syntax), PREFIX)
        except Exception:
            continue  # pydicom cannot read it at all: the document lists the UIDs alone
        taken += 1
        assert json.dumps(fast) == json.dumps(slow)
    assert taken > 300
