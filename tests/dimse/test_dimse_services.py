"""C-CANCEL, move destinations, sub-operation failures, storage commitment and caller policy."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelGet,
)
from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.archive.query import locate
from hounsfield.db import engine as db
from hounsfield.db.tables import work_item
from hounsfield.dimse.server import DimseServer
from hounsfield.sites.devices import Device, add_device
from hounsfield.workers.runner import Worker
from tests.conftest import make_archive, make_settings
from tests.dcmtk import StoreSCP, free_port, run
from tests.synth import instance, put


def _statuses(output: str) -> list[int]:
    return [int(m, 16) for m in re.findall(r"DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})", output)]


def _many_studies(archive: Archive, count: int) -> list[str]:
    uids = [generate_uid() for _ in range(count)]
    for uid in uids:
        put(archive, instance(StudyInstanceUID=uid))
    return uids


def test_find_cancel(tmp_path: Path, database_url: str) -> None:
    """Enough matches that the C-CANCEL sent after the second one arrives while the archive is
    still answering (an answer takes well under a millisecond)."""
    archive = make_archive(make_settings(tmp_path, database_url, fsync=False))
    server = DimseServer(archive)
    server.start()
    _many_studies(archive, 600)
    (tmp_path / "rsp").mkdir()
    try:
        proc = run(
            "findscu",
            "-d",
            "-S",
            "-aec",
            "HOUNSFIELD",
            "--cancel",
            "2",
            "-X",
            "-od",
            str(tmp_path / "rsp"),
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "StudyInstanceUID",
            "127.0.0.1",
            str(server.port),
        )
    finally:
        server.stop(1)
        archive.close()
    assert _statuses(proc.stdout + proc.stderr)[-1] == 0xFE00
    assert len(list((tmp_path / "rsp").glob("rsp*.dcm"))) < 600


def test_move_cancel_and_unknown_destination(
    archive: Archive, server: DimseServer, tmp_path: Path
) -> None:
    study = generate_uid()
    for _ in range(60):
        put(archive, instance(StudyInstanceUID=study, PixelData=bytes(32), Rows=4, Columns=4))
    unknown = run(
        "movescu",
        "-d",
        "-S",
        "-aec",
        "HOUNSFIELD",
        "-aem",
        "NOWHERE",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study}",
        "127.0.0.1",
        str(server.port),
    )
    assert _statuses(unknown.stdout + unknown.stderr)[-1] == 0xA801
    scp = StoreSCP(tmp_path / "moved")
    add_device(archive, Device("STORESCP", "127.0.0.1", scp.port))
    try:
        moved = run(
            "movescu",
            "-d",
            "-S",
            "-aec",
            "HOUNSFIELD",
            "-aem",
            "STORESCP",
            "--cancel",
            "1",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study}",
            "127.0.0.1",
            str(server.port),
        )
    finally:
        scp.stop()
    output = moved.stdout + moved.stderr
    assert _statuses(output)[-1] == 0xFE00
    stored = len(list(scp.folder.iterdir()))
    assert stored < 60
    # what went before the cancel took effect (a request already on the wire included) is
    # counted as completed, the rest as remaining
    assert (_last_count(output, "Completed"), _last_count(output, "Remaining")) == (
        stored,
        60 - stored,
    )


def _last_count(output: str, kind: str) -> int:
    """The last `kind` (Completed, Remaining...) sub-operation count in DCMTK's dump."""
    return int(re.findall(rf"{kind} Suboperations\s*:\s*(\d+)", output)[-1])


def _get_association(port: int, storage_class: str, on_store: Any) -> Association:
    """A C-GET SCU association that takes `storage_class` back and hands it to `on_store`."""
    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(storage_class, ExplicitVRLittleEndian)
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="HOUNSFIELD",
        ext_neg=[build_role(storage_class, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    return assoc


def test_get_cancel(archive: Archive, server: DimseServer) -> None:
    study = generate_uid()
    for _ in range(60):
        put(archive, instance(StudyInstanceUID=study))
    received: list[str] = []
    assoc = _get_association(server.port, CTImageStorage, lambda e: received.append("x") or 0x0000)
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    statuses = []
    final = Dataset()
    for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet, msg_id=7):
        statuses.append(int(status.Status))
        final = status
        if len(statuses) == 1:
            cx = assoc._get_valid_context(StudyRootQueryRetrieveInformationModelGet, "", "scu")
            assoc.send_c_cancel(7, cx.context_id)
    assoc.release()
    assert statuses[-1] == 0xFE00
    assert len(received) < 60
    # what went before the cancel took effect (a request already on the wire included) is
    # counted as completed, the rest as remaining
    assert final.NumberOfCompletedSuboperations == len(received)
    assert final.NumberOfRemainingSuboperations == 60 - len(received)


def test_get_reports_failed_sub_operations(archive: Archive, server: DimseServer) -> None:
    """The peer takes CT but not MR: the MR object is a failed sub-operation, by UID."""
    study = generate_uid()
    put(archive, instance(StudyInstanceUID=study))
    mr = instance(StudyInstanceUID=study, Modality="MR", SOPClassUID=MRImageStorage)
    put(archive, mr)
    assoc = _get_association(server.port, CTImageStorage, lambda e: 0x0000)
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    responses = list(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))
    assoc.release()
    final, identifier = responses[-1]
    assert final.Status == 0xB000  # warning: some sub-operations failed
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (1, 1)
    assert identifier.FailedSOPInstanceUIDList == mr.SOPInstanceUID


def _commit_request(refs: list[tuple[str, str]]) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = generate_uid()
    ds.ReferencedSOPSequence = []
    for cuid, iuid in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = cuid
        item.ReferencedSOPInstanceUID = iuid
        ds.ReferencedSOPSequence.append(item)
    return ds


def _stored_refs(archive: Archive) -> tuple[list[tuple[str, str]], Path]:
    good = instance()
    corrupt = instance()
    put(archive, good)
    put(archive, corrupt)
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.SOPInstanceUID = corrupt.SOPInstanceUID
    (located,) = locate(archive, query)
    refs = [
        (CTImageStorage, str(good.SOPInstanceUID)),
        (CTImageStorage, str(corrupt.SOPInstanceUID)),
        (CTImageStorage, generate_uid()),
    ]
    return refs, located.path


def _report_catcher() -> tuple[dict[str, object], threading.Event, Any]:
    """What the peer's N-EVENT-REPORT handler saw, an event set when it came, the handler."""
    report: dict[str, object] = {}
    done = threading.Event()

    def on_report(event: evt.Event) -> tuple[int, None]:
        report["type"] = event.event_type
        report["info"] = event.event_information
        done.set()
        return 0x0000, None

    return report, done, on_report


def _check_report(report: dict[str, object], refs: list[tuple[str, str]]) -> None:
    assert report["type"] == 2  # some failed
    info = report["info"]
    assert isinstance(info, Dataset)
    assert [str(i.ReferencedSOPInstanceUID) for i in info.ReferencedSOPSequence] == [refs[0][1]]
    failed = {str(i.ReferencedSOPInstanceUID): int(i.FailureReason) for i in info.FailedSOPSequence}
    assert failed == {refs[1][1]: 0x0110, refs[2][1]: 0x0112}


def _run_reports(archive: Archive, done: threading.Event | None) -> None:
    """Run the work queue (any node's worker) until the commitment report item is done."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        Worker(archive, threads=1, processes=0).run_until_idle()
        with db.read(archive.engine) as conn:
            status = conn.scalar(
                select(work_item.c.status).where(work_item.c.kind == "commitment-report")
            )
        if status == "completed" and (done is None or done.wait(5)):
            return
        time.sleep(0.1)
    raise AssertionError(f"commitment report not done: {status}")


def test_storage_commitment_on_the_same_association(archive: Archive, server: DimseServer) -> None:
    refs, corrupt_path = _stored_refs(archive)
    data = bytearray(corrupt_path.read_bytes())
    data[-1] ^= 0xFF  # the stored file no longer matches its checksum
    corrupt_path.write_bytes(bytes(data))
    report, done, on_report = _report_catcher()
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(StorageCommitmentPushModel)
    assoc = ae.associate(
        "127.0.0.1",
        server.port,
        ae_title="HOUNSFIELD",
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)],
    )
    request = _commit_request(refs)
    status, _ = assoc.send_n_action(
        request, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1"
    )
    assert status.Status == 0x0000
    assert done.wait(10)
    assoc.release()
    _check_report(report, refs)
    assert report["info"].TransactionUID == request.TransactionUID  # type: ignore[attr-defined]
    # Reported on the requestor's association: the durable work item has nothing left to do.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with db.read(archive.engine) as conn:
            row = conn.execute(
                select(work_item.c.status, work_item.c.result).where(
                    work_item.c.kind == "commitment-report"
                )
            ).one()
        if row.status == "completed":
            break
        time.sleep(0.05)
    assert tuple(row) == ("completed", "reported on the requesting association")


def test_storage_commitment_on_a_new_association(archive: Archive, server: DimseServer) -> None:
    refs, corrupt_path = _stored_refs(archive)
    corrupt_path.unlink()  # a missing file fails the same way
    report, done, on_report = _report_catcher()
    listener = AE(ae_title="MODALITY")
    listener.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    port = free_port()
    scp = listener.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)]
    )
    add_device(archive, Device("MODALITY", "127.0.0.1", port))
    try:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(StorageCommitmentPushModel)
        assoc = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
        status, _ = assoc.send_n_action(
            _commit_request(refs), 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1"
        )
        assoc.release()  # the report must come on an association of the archive's own
        assert status.Status == 0x0000
        _run_reports(archive, done)
    finally:
        scp.shutdown()
    _check_report(report, refs)


def test_known_callers_only(tmp_path: Path, database_url: str) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, caller_policy="known"))
    server = DimseServer(archive)
    server.start()
    try:
        echo = ["-aec", "HOUNSFIELD", "127.0.0.1", str(server.port)]
        assert run("echoscu", "-aet", "STRANGER", *echo).returncode != 0
        add_device(archive, Device("FRIEND", "127.0.0.1", 104))
        time.sleep(1.1)  # the allow-list is re-read at most once a second
        assert run("echoscu", "-aet", "FRIEND", *echo).returncode == 0
        assert run("echoscu", "-aet", "STRANGER", *echo).returncode != 0
    finally:
        server.stop(1)
        archive.close()


@pytest.mark.parametrize("level", ["STUDY", "SERIES", "IMAGE"])
def test_get_every_level(archive: Archive, server: DimseServer, level: str) -> None:
    study, series = generate_uid(), generate_uid()
    stored = [instance(StudyInstanceUID=study, SeriesInstanceUID=series) for _ in range(3)]
    for ds in stored:
        put(archive, ds)
    put(archive, instance())  # another study, never sent
    received: list[str] = []

    def on_store(event: evt.Event) -> int:
        received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    assoc = _get_association(server.port, CTImageStorage, on_store)
    query = Dataset()
    query.QueryRetrieveLevel = level
    query.StudyInstanceUID = study
    if level != "STUDY":
        query.SeriesInstanceUID = series
    if level == "IMAGE":
        query.SOPInstanceUID = "\\".join(str(d.SOPInstanceUID) for d in stored[:2])
    responses = list(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))
    assoc.release()
    expected = stored[:2] if level == "IMAGE" else stored
    assert sorted(received) == sorted(str(d.SOPInstanceUID) for d in expected)
    final = responses[-1][0]
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == len(expected)


def test_get_decompresses_for_a_peer_without_the_stored_syntax(
    archive: Archive, server: DimseServer
) -> None:
    """A JPEG 2000 object goes to a peer that only takes explicit VR little endian:
    decoded, same pixels, same SOP Instance UID."""
    from hounsfield.archive.store import store
    from hounsfield.storage.filemeta import split_part10
    from tests.data import local

    original = local("MR2_J2KR.dcm")
    meta, data = split_part10(original.read_bytes())
    result = store(archive, str(meta.TransferSyntaxUID), data)
    received: list[Dataset] = []

    def on_store(event: evt.Event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0x0000

    cuid = result.sop_class
    assoc = _get_association(server.port, cuid, on_store)
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.SOPInstanceUID = result.sop_instance
    final = list(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))[-1][0]
    assoc.release()
    assert final.Status == 0x0000
    (got,) = received
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert got.SOPInstanceUID == result.sop_instance
    assert (got.pixel_array == dcmread(original).pixel_array).all()


def test_idle_timeout_and_association_limit(tmp_path: Path, database_url: str) -> None:
    archive = make_archive(
        make_settings(tmp_path, database_url, idle_timeout=1.0, max_associations=1)
    )
    server = DimseServer(archive)
    server.start()
    try:
        ae = AE(ae_title="IDLE")
        ae.add_requested_context("1.2.840.10008.1.1")
        first = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
        assert first.is_established
        # only one association at a time (asked by echoscu: a pynetdicom requestor whose
        # thread is slow to wake may take a rejection that came at once for an abort)
        echo = ["-aet", "IDLE", "-aec", "HOUNSFIELD", "127.0.0.1", str(server.port)]
        second = run("echoscu", *echo)
        assert second.returncode != 0 and "Local Limit Exceeded" in second.stderr
        deadline = time.monotonic() + 10
        while first.is_established and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not first.is_established  # the archive dropped the silent association
        while server.ae.active_associations and time.monotonic() < deadline:
            time.sleep(0.1)  # its thread winds down
        third = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
        assert third.is_established
        third.release()
    finally:
        server.stop(1)
        archive.close()


def test_undeliverable_commitment_report_raises_an_alert(
    archive: Archive, server: DimseServer
) -> None:
    from hounsfield.alerts import list_alerts

    refs, _ = _stored_refs(archive)
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(StorageCommitmentPushModel)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
    status, _ = assoc.send_n_action(
        _commit_request(refs), 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1"
    )
    assoc.release()  # gone, and not a known device: the report cannot be delivered
    assert status.Status == 0x0000
    _run_reports(archive, None)
    (alert,) = list_alerts(archive.engine)
    assert (alert.category, alert.source) == ("commitment", "STRANGER")
    assert "not a known device" in alert.message
