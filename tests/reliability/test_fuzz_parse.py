"""Fuzzing the dataset parser and the Part-10 splitter: a result or InvalidDataset, nothing
else, and what the index is given from a parsed dataset is always storable text."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bench.reliability.mutate import Source
from hounsfield.catalog.parse import DEFLATED, INDEX_KEYWORDS, parse_header, required_uids, text
from hounsfield.errors import InvalidDataset
from hounsfield.storage.filemeta import split_part10
from hounsfield.uids import check_uid
from tests.reliability.fuzzing import FUZZ, SOURCES, datasets, part10_bodies

SYNTAXES = [*sorted({s.transfer_syntax for s in SOURCES}), DEFLATED, "1.2.3", ""]


@FUZZ
@given(datasets(), st.sampled_from(SYNTAXES), st.booleans())
def test_the_parser_answers_or_refuses_with_invalid_dataset(
    case: tuple[Source, bytes], other_syntax: str, own_syntax: bool
) -> None:
    source, data = case
    syntax = source.transfer_syntax if own_syntax else other_syntax
    try:
        parsed = parse_header(data, syntax)
        uids = required_uids(parsed)
    except InvalidDataset:
        return
    if syntax != DEFLATED:  # a deflated dataset's header is of the inflated bytes
        assert parsed.header == data[: len(parsed.header)]
    assert all(check_uid(uid, "uid") == uid for uid in uids)
    for keyword in INDEX_KEYWORDS:
        value = text(parsed.dataset, keyword)
        assert isinstance(value, str) and "\0" not in value  # PostgreSQL text takes no NUL
        assert parsed.values[keyword] == value  # also when read straight from the bytes


def test_index_text_leaves_out_nul_characters() -> None:
    """A corrupt value with NUL inside was refused by PostgreSQL as an internal error."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.StudyID = "1\0"
    ds.PatientName = "A\0B^C"
    ds.Modality = ["CT", "M\0R"]
    assert text(ds, "StudyID") == "1"
    assert text(ds, "PatientName") == "AB^C"
    assert text(ds, "Modality") == "CT\\MR"


@FUZZ
@given(part10_bodies())
def test_the_part10_splitter_answers_or_refuses_with_invalid_dataset(body: bytes) -> None:
    try:
        meta, data = split_part10(body)
    except InvalidDataset:
        return
    assert body.endswith(data)
    for element in meta:  # every File Meta value was read while splitting: none fails later
        assert element.tag >> 16 == 2
    assert isinstance(str(meta.TransferSyntaxUID), str)


def test_a_corrupt_file_meta_value_is_refused_while_splitting() -> None:
    """A Transfer Syntax UID whose VR bytes were damaged raised NotImplementedError later,
    in the STOW-RS route (an internal error) instead of a refusal."""
    source = next(s for s in SOURCES if s.meta[132:134] == b"\x02\x00")
    at = source.meta.index(b"\x02\x00\x10\x00UI")
    broken = source.meta[: at + 4] + b"U\x04" + source.meta[at + 6 :]
    try:
        split_part10(broken + source.dataset)
    except InvalidDataset as exc:
        assert "File Meta" in exc.message
    else:
        raise AssertionError("a damaged File Meta was taken")


def test_an_index_attribute_read_as_a_broken_sequence_is_refused() -> None:
    """Found by atheris: Instance Number read as a sequence whose item holds an unknown VR
    passed the parser, then failed with Processing Failure when the index read its text."""
    data = (Path(__file__).parent / "instance_number_sequence.bin").read_bytes()
    try:
        parse_header(data, "1.2.840.10008.1.2")
    except InvalidDataset as exc:
        assert "cannot be parsed" in exc.message
    else:
        raise AssertionError("a broken Instance Number was taken")


# Found by atheris: a Transfer Syntax UID read as a sequence whose item holds a corrupt value.
SEQUENCE_SYNTAX = (
    b"\x02\x00\x10\x00SQ\x06\x00\xcc\x00\x00\x00\x02\xf5jajjjj\xd0\x00\x00\x00"
    b"*\x00\x00\x00jj\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    b"\x00\x00\x00\x00\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00#\x00\x00\xff\xfb\x02"
    b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x81\x01\x00\x00\x00\x00\x00\x00\x05kj"
    b"jjjjjjjjjjjjjjaajjj$\n`\xfd\x00"
    b"\xffH\x00\xff\xff\xff\xff\n\x00\x00\x00"
)


def test_a_file_meta_value_read_as_a_broken_sequence_is_refused_while_splitting() -> None:
    """str(meta.TransferSyntaxUID) raised in the STOW-RS route: Processing Failure."""
    try:
        split_part10(b"\0" * 128 + b"DICM" + SEQUENCE_SYNTAX)
    except InvalidDataset as exc:
        assert "File Meta" in exc.message
    else:
        raise AssertionError("a broken File Meta was taken")
