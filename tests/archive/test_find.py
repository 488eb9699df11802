"""C-FIND matching (PS3.4 C.2.2.2) at every level, on both databases, directly and via findscu."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage, generate_uid

from hounsfield.archive.context import Archive
from hounsfield.archive.query import find
from hounsfield.dimse.server import DimseServer
from tests.dcmtk import run
from tests.synth import instance, put


@dataclass(frozen=True)
class Corpus:
    """UIDs of the stored studies, by letter."""

    study: dict[str, str]
    series: dict[str, str]


@pytest.fixture
def corpus(archive: Archive) -> Corpus:
    """Four studies of three patients with distinct dates, times, modalities and names."""
    st = {k: generate_uid() for k in "ABCD"}
    se = {k: generate_uid() for k in ("A1", "A2", "B1", "C1", "D1")}
    p1 = {"PatientID": "P1", "PatientName": "DOE^JOHN"}
    a = {"StudyInstanceUID": st["A"], "StudyDate": "20240115", "StudyTime": "101500"}
    put(archive, instance(**p1, **a, SeriesInstanceUID=se["A1"], InstanceNumber=1))
    put(archive, instance(**p1, **a, SeriesInstanceUID=se["A1"], InstanceNumber=2))
    put(
        archive,
        instance(
            **p1,
            **a,
            SeriesInstanceUID=se["A2"],
            Modality="MR",
            SOPClassUID=MRImageStorage,
            SeriesNumber=2,
            Manufacturer="OTHER",
        ),
    )
    put(
        archive,
        instance(
            **p1,
            StudyInstanceUID=st["B"],
            StudyDate="20230601",
            StudyTime="080000",
            AccessionNumber="A2",
            StudyDescription="HEAD",
            SeriesInstanceUID=se["B1"],
            Modality="MR",
            SOPClassUID=MRImageStorage,
        ),
    )
    put(
        archive,
        instance(
            PatientID="P2",
            PatientName="Müller^Hans",
            PatientSex="F",
            StudyInstanceUID=st["C"],
            StudyDate="20240301",
            StudyTime="235959",
            AccessionNumber="A3",
            StudyDescription="ABDOMEN",
            SeriesInstanceUID=se["C1"],
        ),
    )
    put(
        archive,
        instance(
            PatientID="P3",
            PatientName="doe^jane",
            StudyInstanceUID=st["D"],
            StudyDate="20221231",
            StudyTime="120000.5",
            AccessionNumber="A4",
            SeriesInstanceUID=se["D1"],
            Modality="US",
        ),
    )
    return Corpus(st, se)


def query(level: str, **keys: object) -> Dataset:
    """An identifier with the given keys (empty string: return key only)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key, value in keys.items():
        setattr(ds, key, value)
    return ds


STUDY_CASES: list[tuple[dict[str, str], str]] = [
    ({}, "ABCD"),
    ({"PatientID": "P1"}, "AB"),
    ({"PatientName": "DOE*"}, "ABD"),  # PN matching ignores case
    ({"PatientName": "D?E^JOHN"}, "AB"),
    ({"PatientName": "*"}, "ABCD"),
    ({"PatientName": "Müller*"}, "C"),
    ({"StudyDate": "20240115"}, "A"),
    ({"StudyDate": "20240101-20241231"}, "AC"),
    ({"StudyDate": "-20221231"}, "D"),
    ({"StudyDate": "20230601-"}, "ABC"),
    ({"StudyTime": "080000-120000"}, "ABD"),  # an upper bound covers its whole second
    ({"StudyTime": "080000-115959"}, "AB"),
    ({"StudyTime": "-1200"}, "ABD"),
    ({"AccessionNumber": "A?"}, "ABCD"),
    ({"AccessionNumber": "A3"}, "C"),
    ({"StudyDescription": "*HEA*"}, "B"),
    ({"ModalitiesInStudy": "MR"}, "AB"),
    ({"ModalitiesInStudy": "CT\\US"}, "ACD"),
    ({"PatientID": "P1", "ModalitiesInStudy": "CT"}, "A"),
    ({"ReferringPhysicianName": "house*"}, "ABCD"),
    ({"PatientID": "NOBODY"}, ""),
]


@pytest.mark.parametrize(("keys", "expected"), STUDY_CASES)
def test_study_level_matching(
    archive: Archive, corpus: Corpus, keys: dict[str, str], expected: str
) -> None:
    found = [
        str(ds.StudyInstanceUID)
        for ds in find(archive, query("STUDY", StudyInstanceUID="", **keys))
    ]
    assert sorted(found) == sorted(corpus.study[k] for k in expected)


def test_uid_list_matching(archive: Archive, corpus: Corpus) -> None:
    uids = f"{corpus.study['A']}\\{corpus.study['C']}"
    found = {
        str(ds.StudyInstanceUID) for ds in find(archive, query("STUDY", StudyInstanceUID=uids))
    }
    assert found == {corpus.study["A"], corpus.study["C"]}


def test_study_return_keys(archive: Archive, corpus: Corpus) -> None:
    keys = query(
        "STUDY",
        StudyInstanceUID=corpus.study["A"],
        PatientName="",
        NumberOfStudyRelatedSeries="",
        NumberOfStudyRelatedInstances="",
        ModalitiesInStudy="",
        SOPClassesInStudy="",
        InstitutionName="",
        StudyDate="",
        StudyTime="",
        RetrieveAETitle="",
    )
    (ds,) = list(find(archive, keys))
    assert ds.PatientName == "DOE^JOHN"
    assert ds.NumberOfStudyRelatedSeries == 2
    assert ds.NumberOfStudyRelatedInstances == 3
    assert list(ds.ModalitiesInStudy) == ["CT", "MR"]
    assert set(ds.SOPClassesInStudy) == {"1.2.840.10008.5.1.4.1.1.2", MRImageStorage}
    assert ds.InstitutionName == "GENERAL HOSPITAL"  # not indexed: from the stored header
    assert (ds.StudyDate, ds.StudyTime) == ("20240115", "101500")
    assert ds.RetrieveAETitle == "HOUNSFIELD"
    assert ds.QueryRetrieveLevel == "STUDY"


def test_patient_level_counts(archive: Archive, corpus: Corpus) -> None:
    keys = query(
        "PATIENT",
        PatientID="P1",
        PatientName="",
        NumberOfPatientRelatedStudies="",
        NumberOfPatientRelatedSeries="",
        NumberOfPatientRelatedInstances="",
    )
    (ds,) = list(find(archive, keys, root="patient"))
    assert (
        ds.NumberOfPatientRelatedStudies,
        ds.NumberOfPatientRelatedSeries,
        ds.NumberOfPatientRelatedInstances,
    ) == (2, 3, 4)
    everyone = find(archive, query("PATIENT", PatientID=""), root="patient")
    assert sorted(str(d.PatientID) for d in everyone) == ["P1", "P2", "P3"]


def test_series_and_image_levels(archive: Archive, corpus: Corpus) -> None:
    series = list(
        find(
            archive,
            query(
                "SERIES",
                StudyInstanceUID=corpus.study["A"],
                SeriesInstanceUID="",
                Modality="",
                NumberOfSeriesRelatedInstances="",
                Manufacturer="",
            ),
        )
    )
    got = {
        str(s.SeriesInstanceUID): (s.Modality, s.NumberOfSeriesRelatedInstances, s.Manufacturer)
        for s in series
    }
    assert got == {corpus.series["A1"]: ("CT", 2, "ACME"), corpus.series["A2"]: ("MR", 1, "OTHER")}
    mr = find(
        archive,
        query("SERIES", StudyInstanceUID=corpus.study["A"], Modality="MR", SeriesInstanceUID=""),
    )
    assert [str(s.SeriesInstanceUID) for s in mr] == [corpus.series["A2"]]
    images = list(
        find(
            archive,
            query(
                "IMAGE",
                StudyInstanceUID=corpus.study["A"],
                SeriesInstanceUID=corpus.series["A1"],
                SOPInstanceUID="",
                InstanceNumber="",
                SOPClassUID="",
            ),
        )
    )
    assert sorted(int(i.InstanceNumber) for i in images) == [1, 2]
    assert {i.SOPClassUID for i in images} == {"1.2.840.10008.5.1.4.1.1.2"}
    two = find(
        archive,
        query(
            "IMAGE",
            StudyInstanceUID=corpus.study["A"],
            SeriesInstanceUID=corpus.series["A1"],
            InstanceNumber="2",
            SOPInstanceUID="",
        ),
    )
    assert len(list(two)) == 1


def test_specific_character_set(archive: Archive, corpus: Corpus) -> None:
    (ds,) = list(find(archive, query("STUDY", PatientID="P2", PatientName="")))
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.PatientName == "Müller^Hans"


def test_bad_level_is_refused(archive: Archive, corpus: Corpus) -> None:
    from hounsfield.errors import InvalidDataset

    with pytest.raises(InvalidDataset):
        list(find(archive, query("WARD")))
    with pytest.raises(InvalidDataset):
        list(find(archive, query("PATIENT", PatientID=""), root="study"))


def _findscu(port: int, tmp: Path, *keys: str, root: str = "-S") -> list[Dataset]:
    out = tmp / f"find{len(list(tmp.iterdir()))}"
    out.mkdir()
    args = [root, "-aec", "HOUNSFIELD", "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    run("findscu", *args, "127.0.0.1", str(port), check=True)
    return [dcmread(p) for p in sorted(out.iterdir())]


def test_findscu_every_level(
    archive: Archive, corpus: Corpus, server: DimseServer, tmp_path: Path
) -> None:
    port = server.port
    studies = _findscu(
        port,
        tmp_path,
        "QueryRetrieveLevel=STUDY",
        "StudyInstanceUID",
        "StudyDate=20240101-20241231",
        "NumberOfStudyRelatedInstances",
        "ModalitiesInStudy",
    )
    assert {str(d.StudyInstanceUID) for d in studies} == {corpus.study["A"], corpus.study["C"]}
    a = next(d for d in studies if d.StudyInstanceUID == corpus.study["A"])
    assert a.NumberOfStudyRelatedInstances == 3
    assert list(a.ModalitiesInStudy) == ["CT", "MR"]
    wild = _findscu(
        port, tmp_path, "QueryRetrieveLevel=STUDY", "PatientName=DOE*", "StudyInstanceUID"
    )
    assert len(wild) == 3
    uids = _findscu(
        port,
        tmp_path,
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={corpus.study['B']}\\{corpus.study['D']}",
    )
    assert {str(d.StudyInstanceUID) for d in uids} == {corpus.study["B"], corpus.study["D"]}
    patients = _findscu(
        port,
        tmp_path,
        "QueryRetrieveLevel=PATIENT",
        "PatientID",
        "NumberOfPatientRelatedStudies",
        root="-P",
    )
    assert sorted((str(p.PatientID), p.NumberOfPatientRelatedStudies) for p in patients) == [
        ("P1", 2),
        ("P2", 1),
        ("P3", 1),
    ]
    series = _findscu(
        port,
        tmp_path,
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={corpus.study['A']}",
        "SeriesInstanceUID",
        "Modality=CT",
    )
    assert [str(s.SeriesInstanceUID) for s in series] == [corpus.series["A1"]]
    images = _findscu(
        port,
        tmp_path,
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={corpus.study['A']}",
        f"SeriesInstanceUID={corpus.series['A1']}",
        "SOPInstanceUID",
    )
    assert len(images) == 2
    names = _findscu(
        port,
        tmp_path,
        "QueryRetrieveLevel=STUDY",
        "SpecificCharacterSet=ISO_IR 192",
        "PatientName=Müller*",
        "StudyInstanceUID",
    )
    assert [str(d.PatientName) for d in names] == ["Müller^Hans"]
