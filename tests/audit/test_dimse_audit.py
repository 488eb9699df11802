"""DIMSE traffic in the audit trail: associations opened and refused, stores, queries and
retrieves, each with its caller, address, patient and study; and deletes and exports."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread

from hounsfield.archive.context import Archive
from hounsfield.archive.delete import remove
from hounsfield.audit.events import SUCCESS
from hounsfield.catalog import partitions
from hounsfield.dimse.server import DimseServer
from hounsfield.sites.devices import Device, add_device
from hounsfield.sites.forward import forward_studies
from hounsfield.workers.runner import Worker
from tests.audit.helpers import recorded
from tests.dcmtk import StoreSCP, run
from tests.synth import instance, write_part10

STUDY = "1.2.826.0.1.3680043.8.498.1"


def _scu(
    tool: str, port: int, *args: str, calling: str = "MODALITY", files: tuple[str, ...] = ()
) -> None:
    run(
        tool,
        "-aet",
        calling,
        "-aec",
        "HOUNSFIELD",
        *args,
        "127.0.0.1",
        str(port),
        *files,
        check=True,
    )


def test_associations_stores_queries_and_retrieves_are_recorded(
    archive: Archive, server: DimseServer, tmp_path: Path
) -> None:
    files = [
        write_part10(instance(StudyInstanceUID=STUDY, InstanceNumber=n + 1), tmp_path / f"{n}.dcm")
        for n in range(3)
    ]
    ds = dcmread(files[0])
    study, patient = str(ds.StudyInstanceUID), str(ds.PatientID)
    _scu("storescu", server.port, files=tuple(map(str, files)))
    _scu(
        "findscu",
        server.port,
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"PatientID={patient}",
        "-k",
        "StudyInstanceUID",
    )
    got = tmp_path / "got"
    got.mkdir()
    _scu(
        "getscu",
        server.port,
        "-S",
        "-od",
        str(got),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study}",
        calling="VIEWER",
    )
    refused = run("echoscu", "-aet", "INTRUDER", "-aec", "NOSUCHAE", "127.0.0.1", str(server.port))
    assert refused.returncode != 0

    opened = recorded(archive, event="association")
    assert {r.user for r in opened} >= {"MODALITY", "VIEWER"}
    assert all(r.host == "127.0.0.1" and r.protocol == "DICOM" for r in opened)
    assert all(r.partition == "HOUNSFIELD" for r in opened)

    [stored] = recorded(archive, event="store")
    assert (stored.user, stored.ae_title, stored.host) == ("MODALITY", "MODALITY", "127.0.0.1")
    assert (stored.study_uid, stored.patient_id, stored.count) == (study, patient, 3)
    assert stored.patient_name == str(ds.PatientName) and stored.outcome == SUCCESS

    [query] = recorded(archive, event="query")
    assert query.user == "MODALITY" and query.patient_id == patient and query.count == 1
    assert f"PatientID={patient}" in query.detail and "QueryRetrieveLevel=STUDY" in query.detail

    [got_record] = recorded(archive, event="retrieve")
    assert (got_record.user, got_record.study_uid, got_record.count) == ("VIEWER", study, 3)
    assert got_record.patient_id == patient  # named from the index
    assert got_record.detail == "C-GET"

    [refusal] = recorded(archive, event="association-refused")
    assert (refusal.user, refusal.host, refusal.outcome) == ("INTRUDER", "127.0.0.1", 4)
    assert "NOSUCHAE" in refusal.detail


def test_refused_callers_of_an_allow_list_are_recorded(
    archive: Archive, server: DimseServer
) -> None:
    with archive.engine.begin() as conn:
        partitions.change(conn, "HOUNSFIELD", accept_from=["CT1@10.1.2.0/24"])
    archive.forget_partitions()
    assert (
        run(
            "echoscu", "-aet", "CT1", "-aec", "HOUNSFIELD", "127.0.0.1", str(server.port)
        ).returncode
        != 0
    )
    [refusal] = recorded(archive, event="association-refused")
    assert refusal.user == "CT1" and refusal.partition == "HOUNSFIELD"
    assert "allow-list" in refusal.detail
    [change] = recorded(archive, event="config")
    assert change.detail == "partition HOUNSFIELD changed: accept_from"


def test_moves_deletes_and_exports_are_recorded(
    archive: Archive, server: DimseServer, tmp_path: Path
) -> None:
    path = write_part10(instance(), tmp_path / "one.dcm")
    ds = dcmread(path)
    study = str(ds.StudyInstanceUID)
    _scu("storescu", server.port, files=(str(path),))
    scp = StoreSCP(tmp_path / "moved")
    try:
        add_device(archive, Device("STORESCP", "127.0.0.1", scp.port))
        _scu(
            "movescu",
            server.port,
            "-S",
            "-aem",
            "STORESCP",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study}",
            calling="WORKSTATION",
        )
        refused_move = run(
            "movescu",
            "-aet",
            "WORKSTATION",
            "-aec",
            "HOUNSFIELD",
            "-aem",
            "NOWHERE",
            "-S",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study}",
            "127.0.0.1",
            str(server.port),
        )
        assert refused_move.returncode != 0  # Move Destination unknown
        assert forward_studies(archive, "STORESCP", study=study) == [study]
        assert Worker(archive, threads=1, processes=0).run_until_idle() >= 1
    finally:
        scp.stop()
    assert remove(archive, study) == 1

    moved, unknown = recorded(archive, event="retrieve")
    assert (moved.user, moved.study_uid, moved.count, moved.outcome) == (
        "WORKSTATION",
        study,
        1,
        SUCCESS,
    )
    assert moved.detail == "C-MOVE to STORESCP"
    assert unknown.outcome == 4 and "NOWHERE" in unknown.detail

    [export] = recorded(archive, event="export")
    assert (export.called, export.study_uid, export.count) == ("STORESCP", study, 1)
    assert export.patient_id == str(ds.PatientID) and export.user == "system"

    [deleted] = recorded(archive, event="delete")
    assert (deleted.study_uid, deleted.count, deleted.patient_id) == (study, 1, str(ds.PatientID))
    assert deleted.detail == f"study {study}"
    assert [r.detail for r in recorded(archive, event="config")] == ["device STORESCP added"]
