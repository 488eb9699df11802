"""The fast header scan gives what pydicom's read_dataset gives, or declines."""

from __future__ import annotations

import random
import struct
import warnings
import zlib
from collections.abc import Iterator
from io import BytesIO

import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.filereader import read_dataset, read_file_meta_info
from pydicom.valuerep import EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32

from hounsfield.catalog import parse
from hounsfield.catalog.parse import (
    DEFLATED,
    INDEX_KEYWORDS,
    INDEX_TAGS,
    Encoding,
    Parsed,
    parse_header,
    required_uids,
    text,
)
from hounsfield.catalog.scan import LONG_VRS, SHORT_VRS, scan
from hounsfield.errors import InvalidDataset
from tests.data import dataset_bytes, part10_files

EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
IMPLICIT_LE = "1.2.840.10008.1.2"
UNDEFINED = 0xFFFFFFFF


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about odd values in the test files
        yield


def pydicom_header(data: bytes, transfer_syntax: str) -> Parsed:
    """parse_header with the scanner declining: the pydicom path."""
    original = parse.scan
    parse.scan = lambda *_args: None
    try:
        return parse_header(data, transfer_syntax)
    finally:
        parse.scan = original


def summary(parsed: Parsed) -> list[object]:
    ds = parsed.dataset
    as_pydicom_reads = {keyword: text(ds, keyword) for keyword in INDEX_KEYWORDS}
    assert parsed.values == as_pydicom_reads  # values read straight from the bytes included
    return [
        *as_pydicom_reads.values(),
        repr(ds.get("NumberOfFrames")),
        ds.original_character_set,
        ds.original_encoding,
        parsed.header,
    ]


def scanned(data: bytes, transfer_syntax: str) -> int | None:
    """The header end the scanner finds, None if it declines."""
    encoding = Encoding.of(transfer_syntax)
    found = scan(data, encoding.implicit_vr, encoding.little_endian, INDEX_TAGS)
    return None if found is None else found.end


def pydicom_end(data: bytes, transfer_syntax: str) -> int:
    encoding = Encoding.of(transfer_syntax)
    fp = BytesIO(data)
    read_dataset(fp, encoding.implicit_vr, encoding.little_endian, stop_when=parse._stop_at_pixels)
    return fp.tell()


def assert_same(data: bytes, transfer_syntax: str) -> None:
    """Both paths give the same result, or raise the same InvalidDataset."""
    outcomes = []
    for reader in (parse_header, pydicom_header):
        try:
            outcomes.append(summary(reader(data, transfer_syntax)))
        except InvalidDataset as exc:
            outcomes.append([str(exc)])
    assert outcomes[0] == outcomes[1]


def test_vr_lengths_are_pydicoms() -> None:
    assert {vr.decode() for vr in LONG_VRS} == set(EXPLICIT_VR_LENGTH_32)
    assert {vr.decode() for vr in SHORT_VRS} == set(EXPLICIT_VR_LENGTH_16)


def real_datasets() -> Iterator[tuple[str, bytes, str]]:
    """Name, dataset bytes (inflated) and transfer syntax of every Part-10 test file."""
    for item in part10_files():
        try:
            syntax = str(read_file_meta_info(item.path).TransferSyntaxUID)
            Encoding.of(syntax)
        except Exception:
            continue
        data = dataset_bytes(item.path)
        if syntax == DEFLATED:
            data, syntax = zlib.decompress(data, -zlib.MAX_WBITS), EXPLICIT_LE
        yield item.path.name, data, syntax


# Test files whose last elements run past their end: pydicom reads the first two with
# their pixel data or plan cut short and the third as an empty dataset; DCMTK reads none.
TRUNCATED = {
    "MR_truncated.dcm",
    "rtplan_truncated.dcm",
    "emri_small_jpeg_2k_lossless_too_short.dcm",
}


def test_real_files_match_pydicom() -> None:
    handled, declined = 0, []
    for name, data, syntax in real_datasets():
        if name in TRUNCATED:
            for reader in (parse_header, pydicom_header):
                with pytest.raises(InvalidDataset, match=r"past the end|ends early"):
                    reader(data, syntax)
            continue
        end = scanned(data, syntax)
        if end is None:
            declined.append(name)
            continue
        handled += 1
        assert end == pydicom_end(data, syntax), name
        assert summary(parse_header(data, syntax)) == summary(pydicom_header(data, syntax)), name
    print(f"scanned {handled}, declined {len(declined)}: {', '.join(declined)}")
    assert handled >= 0.9 * (handled + len(declined))
    assert handled > 200


def test_deflated_file_takes_the_fast_path() -> None:
    [item] = [f for f in part10_files() if f.path.name == "image_dfl.dcm"]
    data = dataset_bytes(item.path)
    assert scanned(zlib.decompress(data, -zlib.MAX_WBITS), EXPLICIT_LE) is not None
    assert summary(parse_header(data, DEFLATED)) == summary(pydicom_header(data, DEFLATED))


# Hand-made datasets.


def element(
    tag: int, vr: str, value: bytes, *, big: bool = False, length: int | None = None
) -> bytes:
    """An explicit VR element (length: override, e.g. undefined)."""
    order = ">" if big else "<"
    size = len(value) if length is None else length
    head = struct.pack(order + "HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr.encode() in LONG_VRS:
        return head + struct.pack(order + "HL", 0, size) + value
    return head + struct.pack(order + "H", size) + value


def implicit(tag: int, value: bytes, *, length: int | None = None) -> bytes:
    size = len(value) if length is None else length
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, size) + value


def marker(tag: int, length: int = 0, *, big: bool = False) -> bytes:
    """An item or delimiter header."""
    return struct.pack(">HHL" if big else "<HHL", tag >> 16, tag & 0xFFFF, length)


ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


def undefined_item(*elements: bytes, big: bool = False) -> bytes:
    return marker(ITEM, UNDEFINED, big=big) + b"".join(elements) + marker(ITEM_END, big=big)


def defined_item(*elements: bytes, big: bool = False) -> bytes:
    body = b"".join(elements)
    return marker(ITEM, len(body), big=big) + body


def sequence(tag: int, *items: bytes, vr: str = "SQ", big: bool = False) -> bytes:
    content = b"".join(items) + marker(SEQUENCE_END, big=big)
    return element(tag, vr, content, big=big, length=UNDEFINED)


def identity(big: bool = False) -> list[bytes]:
    """The index elements after the sequences, up to Pixel Data."""
    return [
        element(0x00100010, "PN", b"M\xfcller^Hans ", big=big),
        element(0x00100020, "LO", b"PID-7 ", big=big),
        element(0x0020000D, "UI", b"1.2.3.4\x00", big=big),
        element(0x0020000E, "UI", b"1.2.3.5\x00", big=big),
        element(0x00200013, "IS", b"12", big=big),
        element(0x00280008, "IS", b"3 ", big=big),
        element(0x00280010, "US", struct.pack(">H" if big else "<H", 512), big=big),
    ]


def head(big: bool = False) -> list[bytes]:
    return [
        element(0x00080005, "CS", b"ISO_IR 100", big=big),
        element(0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.2\x00", big=big),
        element(0x00080018, "UI", b"1.2.3.6\x00", big=big),
        element(0x00080060, "CS", b"CT", big=big),
    ]


PIXELS = element(0x7FE00010, "OW", b"\x00\x01" * 8)


def check(data: bytes, transfer_syntax: str, end: int) -> Parsed:
    """The scanner takes data, ends where pydicom ends, and both paths agree."""
    assert scanned(data, transfer_syntax) == end == pydicom_end(data, transfer_syntax)
    assert_same(data, transfer_syntax)
    return parse_header(data, transfer_syntax)


def test_nested_undefined_length_sequences() -> None:
    inner = sequence(
        0x00081199,
        undefined_item(element(0x00081150, "UI", b"1.2\x00"), element(0x00081155, "UI", b"9\x00")),
        defined_item(element(0x00081150, "UI", b"1.3\x00")),
        undefined_item(),
    )
    outer = sequence(
        0x00081140,
        undefined_item(element(0x00081150, "UI", b"1.4\x00"), inner),
        defined_item(element(0x00081155, "UI", b"1.5\x00"), sequence(0x00081199)),
    )
    icon = sequence(  # encapsulated pixel data inside an item: pydicom jumps its fragments
        0x00880200,
        undefined_item(
            element(0x00280010, "US", b"\x01\x00"),
            element(
                0x7FE00010,
                "OB",
                marker(ITEM) + marker(ITEM, 4) + b"\xff\xd8\xff\xd9",
                length=UNDEFINED,
            )
            + marker(SEQUENCE_END),
        ),
    )
    body = b"".join([*head(), outer, *identity(), icon])
    parsed = check(body + PIXELS, EXPLICIT_LE, len(body))
    assert text(parsed.dataset, "PatientName") == "Müller^Hans"
    assert text(parsed.dataset, "SOPInstanceUID") == "1.2.3.6"
    assert parsed.dataset.get("NumberOfFrames") == 3
    assert "ReferencedImageSequence" not in parsed.dataset  # only index elements are kept


def test_implicit_vr_item_in_explicit_dataset() -> None:
    item = undefined_item(implicit(0x00081150, b"1.2\x00"), implicit(0x00081155, b"1.3\x00"))
    body = b"".join([*head(), sequence(0x00081140, item), *identity()])
    check(body + PIXELS, EXPLICIT_LE, len(body))


def test_un_with_undefined_length() -> None:
    content = undefined_item(implicit(0x00100010, b"NOT^THIS"), implicit(0x00081150, b"1.2\x00"))
    private = [
        element(0x00090010, "LO", b"ACME 1.0"),
        sequence(0x00091001, content, defined_item(implicit(0x00081150, b"1.3\x00")), vr="UN"),
    ]
    body = b"".join([*head(), *private, *identity()])
    parsed = check(body + PIXELS, EXPLICIT_LE, len(body))
    assert text(parsed.dataset, "PatientName") == "Müller^Hans"


def test_implicit_vr_little_endian() -> None:
    private_sq = implicit(  # no VR to look up: pydicom sees the item tag and reads a sequence
        0x00091002,
        undefined_item(implicit(0x00091003, b"xy")) + marker(SEQUENCE_END),
        length=UNDEFINED,
    )
    body = b"".join(
        [
            implicit(0x00080005, b"ISO_IR 100"),
            implicit(0x00080016, b"1.2.840.10008.5.1.4.1.1.7\x00"),
            implicit(0x00080018, b"1.2.3.6\x00"),
            implicit(
                0x00081140,
                undefined_item(implicit(0x00081150, b"1.2\x00")) + marker(SEQUENCE_END),
                length=UNDEFINED,
            ),
            implicit(0x00090010, b"ACME 1.0"),
            private_sq,
            implicit(0x00100010, b"M\xfcller^Hans "),
            implicit(0x0020000D, b"1.2.3.4\x00"),
        ]
    )
    parsed = check(body + implicit(0x7FE00010, b"\x00" * 8), IMPLICIT_LE, len(body))
    assert text(parsed.dataset, "PatientName") == "Müller^Hans"
    assert parsed.dataset["PatientName"].VR == "PN"


def test_big_endian_explicit() -> None:
    item = undefined_item(element(0x00081150, "UI", b"1.2\x00", big=True), big=True)
    body = b"".join([*head(big=True), sequence(0x00081140, item, big=True), *identity(big=True)])
    pixels = element(0x7FE00010, "OW", b"\x00\x01" * 4, big=True)
    parsed = check(body + pixels, EXPLICIT_BE, len(body))
    assert text(parsed.dataset, "InstanceNumber") == "12"
    assert parsed.dataset.original_encoding == (False, False)


def test_no_pixel_data_ends_at_the_end() -> None:
    body = b"".join([*head(), *identity()])
    check(body, EXPLICIT_LE, len(body))
    padded = body + element(0xFFFCFFFC, "OB", b"\x00" * 6)  # Data Set Trailing Padding stops too
    check(padded, EXPLICIT_LE, len(body))


def test_only_other_elements() -> None:
    body = element(0x00280010, "US", b"\x01\x00") + element(0x00280011, "US", b"\x01\x00")
    parsed = check(body + PIXELS, EXPLICIT_LE, len(body))
    assert len(parsed.dataset) == 0  # a dataset, not an empty one: nothing raised


def test_every_truncation_declines_or_matches() -> None:
    item = undefined_item(element(0x00081150, "UI", b"1.2\x00"))
    body = b"".join([*head(), sequence(0x00081140, item), *identity()])
    boundaries = set()
    pos = 0
    for part in [*head(), sequence(0x00081140, item), *identity()]:
        pos += len(part)
        boundaries.add(pos)
    for cut in range(1, len(body)):
        end = scanned(body[:cut], EXPLICIT_LE)
        assert end is None or (cut in boundaries and end == cut), cut
        assert_same(body[:cut], EXPLICIT_LE)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b"".join(head()) + element(0x00100010, "PN", b"AB", length=200), id="value-past-end"
        ),
        pytest.param(
            b"".join(head()) + sequence(0x00100010, undefined_item(), vr="UN"),
            id="wanted-undefined",
        ),
        pytest.param(b"".join(head()[::-1]), id="out-of-order"),
        pytest.param(b"".join(head()) + head()[-1], id="duplicate"),
        pytest.param(b"".join(head()) + element(0x00100010, "XY", b"AB"), id="unknown-vr"),
        pytest.param(
            b"".join(head()) + element(0x00100010, "SQ", b"", length=0), id="wanted-sequence"
        ),
        pytest.param(b"".join(head()) + b"\x10\x00\x10", id="partial-header"),
        pytest.param(
            implicit(0x00080016, b"1.2\x00") + b"".join(identity()), id="implicit-in-explicit"
        ),
        pytest.param(
            b"".join(head())
            + sequence(0x00081140, undefined_item(element(0x00081150, "UI", b"1.2\x00"))[:-8]),
            id="missing-item-delimiter",
        ),
        pytest.param(
            b"".join(head()) + sequence(0x00081140, marker(0x00081150, 4) + b"1.2\x00"),
            id="not-an-item",
        ),
        pytest.param(
            b"".join(head())
            + sequence(0x00081140, marker(ITEM, 100) + element(0x00081150, "UI", b"1.2\x00")),
            id="item-past-end",
        ),
        pytest.param(
            b"".join(head())
            + sequence(0x00081140, marker(ITEM, 10) + element(0x00081150, "UI", b"1.2\x00")),
            id="item-length-mismatch",
        ),
    ],
)
def test_unusual_bytes_decline(body: bytes) -> None:
    assert scanned(body, EXPLICIT_LE) is None
    assert_same(body, EXPLICIT_LE)


def test_deep_nesting_declines() -> None:
    nested = element(0x00081150, "UI", b"1.2\x00")
    for _ in range(40):
        nested = sequence(0x00081140, undefined_item(nested))
    body = b"".join(head()) + nested
    assert scanned(body, EXPLICIT_LE) is None
    assert_same(body, EXPLICIT_LE)


def test_empty_dataset_raises() -> None:
    for body in (b"", PIXELS):
        assert scanned(body, EXPLICIT_LE) is None
        with pytest.raises(InvalidDataset, match="dataset is empty"):
            parse_header(body, EXPLICIT_LE)


def test_corrupt_wanted_value_raises_on_the_fast_path() -> None:
    body = b"".join(head()) + element(0x00200013, "FD", b"abc")  # InstanceNumber, 3 bytes of FD
    assert scanned(body, EXPLICIT_LE) == len(body)
    with pytest.raises(InvalidDataset, match="cannot be parsed"):
        parse_header(body, EXPLICIT_LE)
    assert_same(body, EXPLICIT_LE)


def fragments(*frames: bytes, delimited: bool = True) -> bytes:
    """Encapsulated Pixel Data: an empty offset table, one item per frame."""
    items = marker(ITEM) + b"".join(marker(ITEM, len(f)) + f for f in frames)
    return element(
        0x7FE00010, "OB", items + (marker(SEQUENCE_END) if delimited else b""), length=UNDEFINED
    )


@pytest.mark.parametrize(
    ("tail", "refusal"),
    [
        pytest.param(PIXELS[:-4], "element \\(7FE0,0010\\) runs past the end", id="pixels-cut"),
        pytest.param(fragments(b"ab" * 8)[:-8], "ends early", id="no-sequence-delimiter"),
        pytest.param(fragments(b"ab" * 8)[:-12], "ends early", id="fragment-cut"),
        pytest.param(
            PIXELS + element(0xFFFCFFFC, "OB", b"\x00" * 6)[:-2],
            "element \\(FFFC,FFFC\\) runs past the end",
            id="padding-cut",
        ),
    ],
)
def test_a_tail_cut_short_is_refused(tail: bytes, refusal: str) -> None:
    """Elements after the header that run past the end: pydicom would read the file as an
    empty dataset (or with its pixel data cut), so it is refused on both paths."""
    body = b"".join([*head(), *identity()])
    for reader in (parse_header, pydicom_header):
        with pytest.raises(InvalidDataset, match=refusal):
            reader(body + tail, EXPLICIT_LE)


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(PIXELS, id="pixels"),
        pytest.param(fragments(b"ab" * 8, b"cd" * 4), id="fragments"),
        pytest.param(PIXELS + element(0xFFFCFFFC, "OB", b"\x00" * 6), id="padding"),
        pytest.param(PIXELS + b"\x00" * 7, id="fewer-than-8-bytes-left"),
    ],
)
def test_a_whole_tail_is_taken(tail: bytes) -> None:
    body = b"".join([*head(), *identity()])
    check(body + tail, EXPLICIT_LE, len(body))


def test_mutated_files_decline_or_match() -> None:
    rng = random.Random(7)
    names = {
        "CT_small.dcm",
        "MR_small_bigendian.dcm",
        "rtplan.dcm",
        "test-SR.dcm",
        "MR_small_implicit.dcm",
    }
    files = [f for f in part10_files() if f.path.name in names]
    assert len(files) == len(names)
    taken = 0
    for _ in range(400):
        item = rng.choice(files)
        data = bytearray(dataset_bytes(item.path)[:20_000])
        spot = rng.randrange(min(len(data), 3000))
        if rng.random() < 0.5:
            data[spot] ^= 1 << rng.randrange(8)
        else:
            del data[spot : spot + rng.choice([1, 2, 4, 8])]
        if scanned(bytes(data), item.transfer_syntax) is not None:
            taken += 1
            assert_same(bytes(data), item.transfer_syntax)
    assert taken > 50


PLAIN_VALUES = [
    b"",
    b"A",
    b"1.2.840.10008.5.1.4.1.1.2\x00",
    b" 1.2.3 ",
    b"Doe^John ",
    b"Doe^John^^^",
    b"Doe^John==",
    b"=Yamada^Tarou",
    b"  padded both  ",
    b"trailing NULs\x00\x00",
    b"NUL\x00inside",
    b"tab\tinside\t",
    b"\tleading tab",
    b"line\r\n",
    b"back\\slash",
    b"two\\ values \\",
    b"M\xfcller",
    b"\x1b$B",
    b"12",
    b" 7 ",
    b"+5",
    b"05",
    b"5.0",
    b"abc",
    b"1e2",
    b"-0",
    b"    ",
    b"\x00",
    b"20210301",
    b"2021.03.01 ",
    b"101010.123456 ",
    b"ISO_IR 192",
]


@pytest.mark.parametrize("keyword", INDEX_KEYWORDS)
@pytest.mark.parametrize("explicit_vr", [None, "dictionary", "LO", "UN"])
def test_index_values_are_what_pydicom_reads(keyword: str, explicit_vr: str | None) -> None:
    """Each index attribute's text is pydicom's, whether read straight from its bytes (one
    plain ASCII value) or through pydicom, in any VR and encoding it may come in."""
    tag = tag_for_keyword(keyword)
    assert tag is not None
    vr = dictionary_VR(tag) if explicit_vr == "dictionary" else explicit_vr or ""
    if vr == dictionary_VR(tag) and explicit_vr == "LO":
        vr = "SH"
    sop = b"1.2.3.4\x00"
    for raw in PLAIN_VALUES:
        value = raw + b" " * (len(raw) % 2)
        others = [(t, b"X") for t in (0x00080016, 0x00080018) if t < tag]
        if explicit_vr is None:
            body = b"".join(implicit(t, v) for t, v in others) + implicit(tag, value)
            syntax = IMPLICIT_LE
        else:
            body = b"".join(element(t, "UI", v) for t, v in others) + element(tag, vr, value)
            syntax = EXPLICIT_LE
        body += element(0x0020000D, "UI", sop) if tag < 0x0020000D else b""
        body += PIXELS
        try:
            fast, slow = parse_header(body, syntax), pydicom_header(body, syntax)
        except InvalidDataset:
            with pytest.raises(InvalidDataset):
                pydicom_header(body, syntax)
            continue
        assert fast.values == slow.values, (keyword, vr, raw)
        assert fast.values[keyword] == text(slow.dataset, keyword), (keyword, vr, raw)


def test_plain_values_are_read_without_pydicom(monkeypatch: pytest.MonkeyPatch) -> None:
    """One plain ASCII value per attribute is read from its bytes: pydicom is not asked."""
    body = b"".join([*head(), element(0x00100010, "PN", b"Doe^John "), *identity()[1:], PIXELS])
    expected = pydicom_header(body, EXPLICIT_LE).values

    def refuse(_ds: object, keyword: str) -> str:
        raise AssertionError(f"{keyword} read through pydicom")

    monkeypatch.setattr(parse, "text", refuse)
    values = parse_header(body, EXPLICIT_LE).values
    assert values == expected
    assert values["PatientName"] == "Doe^John"
    assert values["StudyInstanceUID"] == "1.2.3.4"
    assert values["NumberOfFrames"] == "3"


UID_TAGS = {
    "SOPClassUID": 0x00080016,
    "SOPInstanceUID": 0x00080018,
    "StudyInstanceUID": 0x0020000D,
    "SeriesInstanceUID": 0x0020000E,
}


def _uids_or_refusal(parsed: Parsed) -> object:
    try:
        return required_uids(parsed)
    except InvalidDataset as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("keyword", UID_TAGS)
def test_required_uids_read_straight_from_the_bytes_are_pydicoms(keyword: str) -> None:
    """A UID read straight from its bytes is accepted or refused as pydicom's reading is."""
    for raw in [*PLAIN_VALUES, b"1.2\x003", b"1.2.3\x00\x00", b"1.02", b" 1.2 \x00"]:
        value = raw + b" " * (len(raw) % 2)
        body = b"".join(
            element(tag, "UI", value if name == keyword else b"1.2.3.4\x00")
            for name, tag in UID_TAGS.items()
        )
        body += PIXELS
        fast, slow = parse_header(body, EXPLICIT_LE), pydicom_header(body, EXPLICIT_LE)
        assert _uids_or_refusal(fast) == _uids_or_refusal(slow), raw
