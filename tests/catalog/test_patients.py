"""Patient rows: one per Patient ID and issuer; without an ID, one per name and birth date."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import Engine, Table, column, insert, select, table

from hounsfield.archive.context import Archive, open_archive
from hounsfield.archive.delete import remove
from hounsfield.archive.query import Root, find
from hounsfield.archive.store import store
from hounsfield.catalog.parse import parse_header
from hounsfield.db import migrate
from hounsfield.db.engine import make_engine
from hounsfield.db.tables import file, filesystem, instance, partition, patient, series, study
from hounsfield.errors import ArchiveError
from tests.conftest import make_settings
from tests.data import dataset_bytes, local, part10_files
from tests.synth import encode, put
from tests.synth import instance as synth

NO_ID = {"PatientID": ""}


def _query(archive: Archive, level: str, **keys: str) -> list[Dataset]:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    root: Root = "patient" if level == "PATIENT" else "study"
    return list(find(archive, ds, root=root))


def _patients(engine: Engine) -> list[tuple[str, str, str, int, str]]:
    """(ID, name, birth date, num_studies, match_key) of every patient, by name."""
    cols = (
        patient.c.patient_id,
        patient.c.patient_name,
        patient.c.birth_date,
        patient.c.num_studies,
        patient.c.match_key,
    )
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).order_by(patient.c.patient_name, patient.c.pk))
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def test_anonymized_studies_all_found_by_name(archive: Archive) -> None:
    for item in part10_files():
        if item.transfer_syntax:
            with suppress(ArchiveError):  # files with invalid UIDs are refused
                store(archive, item.transfer_syntax, dataset_bytes(item.path))
    names = ("ExplVR_BigEnd.dcm", "color-pl.dcm", "waveform_ecg.dcm")
    expected = {str(dcmread(local(n), stop_before_pixels=True).StudyInstanceUID) for n in names}

    found = _query(archive, "STUDY", PatientName="Ano*", StudyInstanceUID="")
    assert {str(ds.StudyInstanceUID) for ds in found} == expected

    found = _query(
        archive, "PATIENT", PatientName="Ano*", PatientID="", NumberOfPatientRelatedStudies=""
    )
    summary = sorted((str(ds.PatientName), ds.NumberOfPatientRelatedStudies) for ds in found)
    assert summary == [("Anonymized", 2), ("Anonymous", 1)]


def test_objects_without_id_and_different_names_are_two_patients(archive: Archive) -> None:
    jane = synth(**NO_ID, PatientName="DOE^JANE")
    put(archive, jane)
    put(archive, synth(PatientID=None, PatientName="ROE^RICHARD"))

    assert [p[:4] for p in _patients(archive.engine)] == [
        ("", "DOE^JANE", "19700101", 1),
        ("", "ROE^RICHARD", "19700101", 1),
    ]
    found = _query(archive, "STUDY", PatientName="doe^jane", StudyInstanceUID="")
    assert [ds.StudyInstanceUID for ds in found] == [jane.StudyInstanceUID]


def test_objects_without_id_and_same_name_and_birth_date_are_one_patient(
    archive: Archive,
) -> None:
    put(archive, synth(**NO_ID, PatientName="DOE^JANE"))
    put(archive, synth(PatientID=None, PatientName="DOE^JANE"))
    put(archive, synth(**NO_ID, PatientName="DOE^JANE", PatientBirthDate="19800101"))

    assert _patients(archive.engine) == [
        ("", "DOE^JANE", "19700101", 2, "19700101|DOE^JANE"),
        ("", "DOE^JANE", "19800101", 1, "19800101|DOE^JANE"),
    ]
    found = _query(
        archive, "PATIENT", PatientName="DOE^JANE", PatientBirthDate="19700101",
        NumberOfPatientRelatedStudies="",
    )  # fmt: skip
    assert [ds.NumberOfPatientRelatedStudies for ds in found] == [2]


def test_objects_with_an_id_are_one_patient_whatever_the_name(archive: Archive) -> None:
    put(archive, synth(PatientID="P1", PatientName="DOE^JOHN"))
    put(archive, synth(PatientID="P1", PatientName="Doe^John", PatientBirthDate=None))

    assert _patients(archive.engine) == [("P1", "DOE^JOHN", "19700101", 2, "")]
    assert len(_query(archive, "STUDY", PatientName="doe^john", StudyInstanceUID="")) == 2


def test_an_object_joining_a_study_goes_to_the_study_patient(archive: Archive) -> None:
    first = synth(**NO_ID, PatientName="DOE^JANE")
    put(archive, first)
    later = synth(
        **NO_ID,
        PatientName="ROE^JANE",
        StudyInstanceUID=first.StudyInstanceUID,
        SeriesInstanceUID=first.SeriesInstanceUID,
    )
    put(archive, later)
    archive.parents.forget()  # the study's row is then looked up, not taken from the cache
    put(archive, synth(**NO_ID, PatientName="ROE^JANE", StudyInstanceUID=first.StudyInstanceUID))

    assert [p[:4] for p in _patients(archive.engine)] == [("", "DOE^JANE", "19700101", 1)]


def test_deleting_studies_removes_the_patient_left_without_any(archive: Archive) -> None:
    a, b = synth(**NO_ID, PatientName="DOE^JANE"), synth(**NO_ID, PatientName="DOE^JANE")
    other = synth(**NO_ID, PatientName="ROE^RICHARD")
    for ds in (a, b, other):
        put(archive, ds)

    remove(archive, a.StudyInstanceUID)
    assert [p[:4] for p in _patients(archive.engine)] == [
        ("", "DOE^JANE", "19700101", 1),
        ("", "ROE^RICHARD", "19700101", 1),
    ]
    remove(archive, b.StudyInstanceUID)
    assert [p[:4] for p in _patients(archive.engine)] == [("", "ROE^RICHARD", "19700101", 1)]

    put(archive, a)  # stored again: the cached rows are gone, new ones are made
    assert [p[:4] for p in _patients(archive.engine)] == [
        ("", "DOE^JANE", "19700101", 1),
        ("", "ROE^RICHARD", "19700101", 1),
    ]
    assert len(_query(archive, "STUDY", PatientName="DOE^JANE", StudyInstanceUID="")) == 1


def _insert(conn: Any, tbl: Table, **values: Any) -> int:
    """Insert a row with just these columns (the schema may be older than `tables`)."""
    light = table(tbl.name, column("pk"), *(column(k, tbl.c[k].type) for k in values))
    return int(conn.execute(insert(light).values(values).returning(light.c.pk)).scalar_one())


def _downgrade(engine: Engine, revision: str) -> None:
    cfg = migrate.alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_migration_splits_the_patient_without_id(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    engine = make_engine(settings.sqlalchemy_url)
    migrate.upgrade(engine, "0003")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        part = _insert(conn, partition, ae_title=settings.ae_title, description="")
        fs = _insert(
            conn, filesystem, path=str(tmp_path / "old"), tier=1, enabled=True, read_only=False,
            write_only=False, low_watermark=80, high_watermark=90,
        )  # fmt: skip

        def add_patient(patient_id: str, name: str, birth_date: str, studies: int) -> int:
            return _insert(
                conn, patient, partition_pk=part, patient_id=patient_id, issuer="",
                patient_name=name, name_key=name.upper(), birth_date=birth_date, sex="",
                num_studies=studies,
            )  # fmt: skip

        def add_study(patient_pk: int, syntax: str = ExplicitVRLittleEndian, **attrs: Any) -> None:
            ds = synth(**attrs)
            header = parse_header(encode(ds), ExplicitVRLittleEndian).header
            st = _insert(
                conn, study, partition_pk=part, patient_pk=patient_pk,
                study_iuid=ds.StudyInstanceUID, study_date="", study_time="", accession_number="",
                study_id="", description="", referring_physician="", referring_key="",
                modalities="CT", num_series=1, num_instances=1, size_bytes=1, created_at=now,
                updated_at=now,
            )  # fmt: skip
            se = _insert(
                conn, series, study_pk=st, series_iuid=ds.SeriesInstanceUID, modality="CT",
                series_number="", description="", body_part="", series_date="", series_time="",
                num_instances=1,
            )  # fmt: skip
            inst = _insert(
                conn, instance, series_pk=se, sop_iuid=ds.SOPInstanceUID,
                sop_cuid=ds.SOPClassUID, instance_number="", received_at=now, calling_ae="",
                header=header,
            )  # fmt: skip
            _insert(
                conn, file, instance_pk=inst, filesystem_pk=fs, path=ds.SOPInstanceUID, size=1,
                transfer_syntax=syntax, checksum="", created_at=now,
            )  # fmt: skip

        shared = add_patient("", "FIRST^ONE", "19600101", 4)
        add_study(shared, **NO_ID, PatientName="FIRST^ONE", PatientBirthDate="19600101")
        add_study(shared, **NO_ID, PatientName="SECOND^TWO", PatientBirthDate="19700101")
        add_study(shared, PatientID=None, PatientName="SECOND^TWO", PatientBirthDate="19700101")
        add_study(shared, "1.2.3.4", **NO_ID, PatientName="UNREADABLE")  # stays where it is
        with_id = add_patient("P9", "NINE", "19900101", 1)
        add_study(with_id, PatientID="P9", PatientName="OTHER^NAME")

    migrate.upgrade(engine)
    after = [
        ("", "FIRST^ONE", "19600101", 2, "19600101|FIRST^ONE"),
        ("P9", "NINE", "19900101", 1, ""),
        ("", "SECOND^TWO", "19700101", 2, "19700101|SECOND^TWO"),
    ]
    assert _patients(engine) == after

    _downgrade(engine, "0003")
    with engine.connect() as conn:
        rows = conn.execute(select(table("patient", column("patient_id"), column("num_studies"))))
        assert sorted(tuple(r) for r in rows) == [("", 4), ("P9", 1)]
    migrate.upgrade(engine)
    assert _patients(engine) == after
    engine.dispose()

    archive = open_archive(settings)
    try:
        put(archive, synth(**NO_ID, PatientName="SECOND^TWO", PatientBirthDate="19700101"))
        found = _query(archive, "STUDY", PatientName="SECOND*", StudyInstanceUID="")
        assert len(found) == 3
        assert [p[3] for p in _patients(archive.engine)] == [2, 1, 3]
    finally:
        archive.close()
