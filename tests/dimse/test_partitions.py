"""Partitions over DIMSE: admission by called AE title, caller rules, and isolation per service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from hounsfield.archive.context import Archive
from hounsfield.catalog import partitions
from hounsfield.db import engine as db
from hounsfield.dicomnet.operations import move
from hounsfield.dicomnet.peer import Peer
from hounsfield.dimse.server import DimseServer
from hounsfield.errors import InvalidDataset
from hounsfield.sites.devices import Device, add_device
from tests.conftest import make_archive, make_settings
from tests.dcmtk import StoreSCP, free_port
from tests.rejection import rejection
from tests.synth import instance


def _add(archive: Archive, title: str, **fields: Any) -> None:
    with db.write(archive.engine) as conn:
        partitions.add(conn, title, **fields)
    archive.forget_partitions()


def _associate(port: int, called: str, calling: str = "SCU", **kwargs: Any) -> Any:
    ae = AE(ae_title=calling)
    ae.add_requested_context("1.2.840.10008.1.1")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(StorageCommitmentPushModel)
    return ae.associate("127.0.0.1", port, ae_title=called, **kwargs)


@pytest.fixture
def clinic(archive: Archive) -> Iterator[DimseServer]:
    """A server whose archive has a second partition, CLINIC_A, holding one study."""
    _add(archive, "CLINIC_A")
    server = DimseServer(archive)
    server.start()
    yield server
    server.stop(1)


def _store(port: int, called: str, ds: Dataset) -> int:
    assoc = _associate(port, called)
    assert assoc.is_established
    try:
        ds.file_meta = Dataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def _find(port: int, called: str, study: str) -> list[str]:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    assoc = _associate(port, called)
    try:
        found = [
            str(ident.StudyInstanceUID)
            for status, ident in assoc.send_c_find(
                query, StudyRootQueryRetrieveInformationModelFind
            )
            if status and status.Status in (0xFF00, 0xFF01) and ident is not None
        ]
    finally:
        assoc.release()
    return found


def _get(port: int, called: str, study: str) -> tuple[int, int]:
    """(instances received, final completed count) of a study-level C-GET."""
    received: list[str] = []

    def on_store(event: evt.Event) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    assoc = _associate(
        port,
        called,
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    completed = 0
    try:
        for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
            if status and status.Status == 0x0000:
                completed = int(getattr(status, "NumberOfCompletedSuboperations", 0) or 0)
    finally:
        assoc.release()
    return len(received), completed


def test_unknown_called_ae_is_rejected(clinic: DimseServer) -> None:
    assert rejection(clinic.port, "NOBODY_HERE", "SCU") is not None
    assert _associate(clinic.port, "CLINIC_A").is_established


def test_unknown_called_ae_may_fall_back(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, unknown_called_ae_to_default=True)
    archive = make_archive(settings)
    server = DimseServer(archive)
    server.start()
    try:
        ds = instance()
        assert _store(server.port, "ANY_TITLE", ds) == 0x0000
        assert _find(server.port, "HOUNSFIELD", str(ds.StudyInstanceUID))
    finally:
        server.stop(1)
        archive.close()


def test_each_service_sees_only_its_partition(archive: Archive, clinic: DimseServer) -> None:
    ds = instance(SOPClassUID=CTImageStorage)
    study = str(ds.StudyInstanceUID)
    assert _store(clinic.port, "CLINIC_A", ds) == 0x0000
    assert _find(clinic.port, "CLINIC_A", study) == [study]
    assert _find(clinic.port, "HOUNSFIELD", study) == []
    assert _get(clinic.port, "CLINIC_A", study) == (1, 1)
    assert _get(clinic.port, "HOUNSFIELD", study)[0] == 0
    # Storage commitment through the default partition does not vouch for CLINIC_A's object.
    reports: dict[str, Dataset] = {}

    def on_report(event: evt.Event) -> tuple[int, None]:
        info = event.event_information
        reports[str(info.TransactionUID)] = info
        return 0x0000, None

    for called, expect_failed in (("HOUNSFIELD", True), ("CLINIC_A", False)):
        assoc = _associate(clinic.port, called, evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
        transaction = f"1.2.3.4.5.{len(called)}"
        request = Dataset()
        request.TransactionUID = transaction
        ref = Dataset()
        ref.ReferencedSOPClassUID = CTImageStorage
        ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        request.ReferencedSOPSequence = [ref]
        status, _ = assoc.send_n_action(
            request, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1"
        )
        assert status.Status == 0x0000
        deadline = time.monotonic() + 10
        while transaction not in reports and time.monotonic() < deadline:
            time.sleep(0.1)
        assoc.release()
        assert ("FailedSOPSequence" in reports[transaction]) is expect_failed
    # The same SOP Instance stored in the default partition is a separate object.
    assert (
        _store(
            clinic.port,
            "HOUNSFIELD",
            instance(
                **{
                    k: ds[k].value
                    for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
                }
            ),
        )
        == 0x0000
    )
    assert _find(clinic.port, "HOUNSFIELD", study) == [study]
    assert archive.partition("CLINIC_A").pk != archive.partition(None).pk


def test_move_sees_only_its_partition(
    archive: Archive, clinic: DimseServer, tmp_path: Path
) -> None:
    ds = instance(SOPClassUID=CTImageStorage)
    assert _store(clinic.port, "CLINIC_A", ds) == 0x0000
    scp = StoreSCP(tmp_path / "moved")
    add_device(archive, Device("STORESCP", "127.0.0.1", scp.port))
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ds.StudyInstanceUID
    try:
        for called, count in (("HOUNSFIELD", 0), ("CLINIC_A", 1)):
            peer = Peer(called, "127.0.0.1", clinic.port)
            result = move(peer, archive.settings, query, "STORESCP")
            assert (result.completed, result.failed) == (count, 0)
    finally:
        scp.stop()
    assert len(list((tmp_path / "moved").iterdir())) == 1


def test_move_sub_association_calls_as_the_partition(
    archive: Archive, clinic: DimseServer, caplog: pytest.LogCaptureFixture
) -> None:
    ds = instance(SOPClassUID=CTImageStorage)
    assert _store(clinic.port, "CLINIC_A", ds) == 0x0000
    callers: list[str] = []

    def _on_store(event: Any) -> int:
        callers.append(str(event.assoc.requestor.ae_title).strip())
        return 0x0000

    dest = AE(ae_title="VIEWER")
    dest.add_supported_context(CTImageStorage, ExplicitVRLittleEndian)
    port = free_port()
    listener = dest.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, _on_store)]
    )
    add_device(archive, Device("VIEWER", "127.0.0.1", port))
    add_device(archive, Device("GONE", "127.0.0.1", free_port()))
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ds.StudyInstanceUID
    peer = Peer("CLINIC_A", "127.0.0.1", clinic.port)
    try:
        result = move(peer, archive.settings, query, "VIEWER")
        unreachable = move(peer, archive.settings, query, "GONE")
    finally:
        listener.shutdown()
    assert (result.completed, result.failed) == (1, 0)
    assert callers == ["CLINIC_A"]  # the sub-association calls as the partition's AE title
    assert unreachable.status == 0xA801
    assert "C-MOVE destination GONE" in caplog.text and "cannot connect" in caplog.text


def test_caller_rules_per_partition(archive: Archive) -> None:
    _add(archive, "CLINIC_B", accept_from=["MODALITY_B"])
    _add(archive, "CLINIC_C", caller_policy="known")
    server = DimseServer(archive)
    server.start()
    try:
        assert _associate(server.port, "CLINIC_B", "MODALITY_B").is_established
        assert rejection(server.port, "CLINIC_B", "STRANGER") is not None
        assert rejection(server.port, "CLINIC_C", "STRANGER") is not None
        assert _associate(server.port, "HOUNSFIELD", "STRANGER").is_established
    finally:
        server.stop(1)


def test_allow_lists_by_network(archive: Archive) -> None:
    """An allow-list entry may name a network (CIDR), and `*` any AE title from it."""
    _add(archive, "CLINIC_N", accept_from=["*@127.0.0.0/8"])
    _add(archive, "CLINIC_W", accept_from=["CT_W@10.20.0.0/16", "MR_W@127.0.0.1"])
    server = DimseServer(archive)
    server.start()
    try:
        assert _associate(server.port, "CLINIC_N", "ANYONE").is_established
        assert _associate(server.port, "CLINIC_W", "MR_W").is_established
        assert rejection(server.port, "CLINIC_W", "CT_W") is not None  # not from 10.20/16
        assert rejection(server.port, "CLINIC_W", "ANYONE") is not None
    finally:
        server.stop(1)
    with pytest.raises(InvalidDataset):
        _add(archive, "CLINIC_X", accept_from=["CT@10.0.0.0/99"])


def test_partition_on_its_own_port(archive: Archive) -> None:
    port = free_port()
    _add(archive, "CLINIC_D", port=port)
    server = DimseServer(archive)
    server.start()
    try:
        ds = instance()
        assert _store(port, "CLINIC_D", ds) == 0x0000
        assert rejection(port, "HOUNSFIELD", "SCU") is not None  # it answers for CLINIC_D only
        assert _find(server.port, "CLINIC_D", str(ds.StudyInstanceUID))
        assert not _find(server.port, "HOUNSFIELD", str(ds.StudyInstanceUID))
    finally:
        server.stop(1)
