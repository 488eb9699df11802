"""C-FIND answers written straight to bytes are byte for byte what pydicom writes."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage, generate_uid
from pynetdicom.dsutils import encode

from hounsfield.archive.context import Archive
from hounsfield.archive.query import find
from hounsfield.dicomnet.preencoded import EncodedIdentifier, encode_elements
from tests.synth import instance, put


def _query(level: str, *keywords: str, **values: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword in keywords:
        setattr(ds, keyword, None)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


QUERIES = [
    _query(
        "STUDY",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyDescription",
        "ReferringPhysicianName",
        "ModalitiesInStudy",
        "SOPClassesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        "RetrieveAETitle",
        "InstanceAvailability",
        "StudyInstanceUID",
    ),
    _query("SERIES", "Modality", "SeriesNumber", "NumberOfSeriesRelatedInstances", "SeriesDate"),
    _query("IMAGE", "SOPInstanceUID", "SOPClassUID", "InstanceNumber", "NumberOfFrames"),
    _query("IMAGE", "SOPInstanceUID", PatientID="P*"),
    _query("STUDY", "IssuerOfPatientID", "StudyID", PatientName="*"),
]


@pytest.fixture
def stored(archive: Archive) -> None:
    """Two studies: one with two modalities and a non-ASCII name, one plain."""
    study, odd = generate_uid(), generate_uid()
    put(archive, instance(StudyInstanceUID=study, PatientName="MÜLLER^JÖRG", PatientID="P1"))
    put(
        archive,
        instance(
            StudyInstanceUID=study,
            PatientName="MÜLLER^JÖRG",
            PatientID="P1",
            Modality="MR",
            SOPClassUID=MRImageStorage,
            SeriesNumber=2,
            InstanceNumber=7,
        ),
    )
    put(archive, instance(StudyInstanceUID=odd, PatientID="P2", AccessionNumber="ODD1"))


def test_encoded_answers_are_pydicoms_bytes(archive: Archive, stored: None) -> None:
    for query in QUERIES:
        plain = list(find(archive, query))
        assert plain, query
        for implicit in (True, False):
            fast = list(find(archive, query, implicit=implicit))
            assert len(fast) == len(plain)
            for ds, answer in zip(plain, fast, strict=True):
                assert isinstance(answer, EncodedIdentifier)
                assert answer.encoded(implicit) == encode(ds, implicit, True), (query, ds)


def test_a_key_from_the_stored_header_is_answered_as_a_dataset(
    archive: Archive, stored: None
) -> None:
    """Manufacturer is not an index column: it is copied from the stored header."""
    query = _query("IMAGE", "SOPInstanceUID", "Manufacturer")
    answers = list(find(archive, query, implicit=True))
    assert answers and not any(isinstance(a, EncodedIdentifier) for a in answers)
    assert {a.Manufacturer for a in answers} == {"ACME"}


def test_values_this_writer_does_not_cover_are_refused() -> None:
    assert encode_elements([(0x00100010, "PN", "DOE^JOHN")], True) is not None
    assert encode_elements([(0x00081110, "SQ", None)], True) is None
    assert encode_elements([(0x00280010, "US", 512)], False) is None
    assert encode_elements([(0x00080080, "LO", "x" * 70_000)], False) is None
    assert encode_elements([(0x00080080, "UT", "x" * 70_000)], False) is not None


def test_an_identifier_is_only_sent_in_the_encoding_it_was_written_for() -> None:
    answer = EncodedIdentifier(b"\x08\x00\x52\x00\x06\x00\x00\x00IMAGE ", True)
    with pytest.raises(ValueError):
        answer.encoded(False)
