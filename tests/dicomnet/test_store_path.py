"""Storage associations, served by the direct path, store as pynetdicom's path does."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, evt
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import (
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)

from hounsfield.archive.context import Archive
from hounsfield.archive.query import locate
from hounsfield.dicomnet import fastsend
from hounsfield.dicomnet.direct import dimse
from hounsfield.dicomnet.handoff import DispatchingServer
from hounsfield.dimse.server import DimseServer
from tests.conftest import make_archive, make_settings
from tests.dcmtk import run
from tests.dicomnet.conftest import serving_pair
from tests.synth import instance, write_part10


def _to_send(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> Dataset:
    """`ds` as pynetdicom sends it: in the transfer syntax its file meta names."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def _stored(archive: Archive, sop_instance: str) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.SOPInstanceUID = sop_instance
    (located,) = locate(archive, query)
    return dcmread(located.path)


def _files(folder: Path, big: Dataset) -> list[tuple[Path, Dataset]]:
    """`big` and two of pydicom's test files, each with a new SOP Instance UID."""
    folder.mkdir()
    datasets = [
        big.copy(),
        dcmread(get_testdata_file("CT_small.dcm")),
        dcmread(get_testdata_file("MR_small.dcm")),
    ]
    out = []
    for i, ds in enumerate(datasets):
        ds.SOPInstanceUID = generate_uid()
        if hasattr(ds, "file_meta"):
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            path = folder / f"{i}.dcm"
            ds.save_as(path, enforce_file_format=True)
        else:
            path = Path(str(write_part10(ds, folder / f"{i}.dcm")))
        out.append((path, dcmread(path)))
    return out


def test_storescu_stores_alike_on_both_paths(
    archive: Archive, pair: tuple[DimseServer, DimseServer], served: list[Any], tmp_path: Path
) -> None:
    """What storescu sends is stored alike on both paths (data set and file meta), the
    object sent in PDUs of 128 KB exactly as sent."""
    kept: list[list[Dataset]] = []
    big = instance(Rows=512, Columns=512)  # 0.5 MB, in PDUs of 128 KB
    big.PixelData = bytes(range(256)) * 2048
    for server in pair:
        files = _files(tmp_path / str(server.port), big)
        pdu = ["-pdu", "131072", "--max-send-pdu", "131072"]
        args = ["-aec", "HOUNSFIELD", "-R", *pdu, "127.0.0.1", str(server.port)]
        run("storescu", *args, *(str(p) for p, _ in files), check=True)
        kept.append([_stored(archive, str(sent.SOPInstanceUID)) for _, sent in files])
        assert kept[-1][0] == files[0][1]
    for mine, theirs in zip(*kept, strict=True):
        for ds in (mine, theirs):
            del ds.SOPInstanceUID, ds.file_meta.MediaStorageSOPInstanceUID
            del ds.file_meta.FileMetaInformationGroupLength
        assert mine == theirs and mine.file_meta == theirs.file_meta
    assert len(served) == 1  # storescu's association, on the server with the direct path on


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
def test_pynetdicom_store_in_small_pdus(
    tmp_path: Path, database_url: str, served: list[Any], syntax: str
) -> None:
    """Objects in PDUs of 256 bytes (command and data set in many fragments), one association
    storing several, and a duplicate refused with its Error Comment: alike on both paths."""
    archive = make_archive(make_settings(tmp_path, database_url, duplicate_policy="reject"))
    statuses = []
    with serving_pair(archive) as servers:
        for server in servers:
            ae = AE(ae_title="SMALL")
            ae.maximum_pdu_size = 256
            ae.add_requested_context(CTImageStorage, [syntax])
            ae.add_requested_context(Verification)
            assoc = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
            assert assoc.is_established
            sent = [_to_send(instance(PatientID="SP-1"), syntax) for _ in range(3)]
            changed = _to_send(copy.deepcopy(sent[0]), syntax)
            changed.PatientName = "OTHER^NAME"  # the same UID, other contents: refused
            seen = []
            for ds in [*sent, changed]:
                rsp = assoc.send_c_store(ds)
                seen.append((rsp.Status, str(rsp.get("ErrorComment", ""))))
            assert assoc.send_c_echo().Status == 0x0000
            assoc.release()
            for ds in sent:
                kept = _stored(archive, str(ds.SOPInstanceUID))
                assert kept.PixelData == ds.PixelData and kept.PatientID == "SP-1"
            statuses.append(seen)
    archive.close()
    assert statuses[0] == statuses[1]
    assert [s for s, _ in statuses[0]][:3] == [0, 0, 0]
    assert statuses[0][3][0] != 0 and statuses[0][3][1]  # refused, and says why
    assert len(served) == 1


def test_response_command_is_pynetdicom_s() -> None:
    """A C-STORE response with an Error Comment has its elements in tag order, byte for byte
    as pynetdicom encodes it."""
    status = Dataset()
    status.Status = 0xA700
    status.ErrorComment = "storage full"
    reply = dimse.Reply(CTImageStorage, 7, "1.2.3.4")
    mine = dimse._command("C-STORE-RSP", reply, status, False)
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = 7
    primitive.AffectedSOPClassUID = CTImageStorage
    primitive.AffectedSOPInstanceUID = "1.2.3.4"
    primitive.Status = 0xA700
    primitive.ErrorComment = "storage full"
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    assert mine == bytes(encode(message.command_set, True, True))


def _parity_server(path: bool, on_store: Any) -> Any:
    ae = AE(ae_title="PARITY")
    ae.add_supported_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    server = ae.make_server(
        ("127.0.0.1", 0),
        evt_handlers=[(evt.EVT_C_STORE, on_store, [path])],
        server_class=DispatchingServer,
    )
    server.query_path = server.store_path = path
    ae._servers.append(server)  # as DimseServer does: shutdown() looks for it
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_handlers_see_what_pynetdicom_gives_them(served: list[Any]) -> None:
    """The same C-STORE handler, bound to a server with the direct path on and one with it
    off, reads the same event (request, context, data set, file meta, encoded data set), and
    its statuses (a Dataset with an Error Comment, an exception) are answered alike."""
    seen: dict[bool, list[Any]] = {True: [], False: []}

    def on_store(event: Any, path: bool) -> Any:
        request, ctx = event.request, event.context
        seen[path].append(
            (
                type(ctx).__name__,
                ctx.context_id,
                str(ctx.transfer_syntax),
                str(request.AffectedSOPClassUID),
                request.MessageID,
                request.Priority,
                request.MoveOriginatorApplicationEntityTitle,
                request.MoveOriginatorMessageID,
                event.dataset.PatientID,
                event.file_meta.TransferSyntaxUID,
                event.encoded_dataset(include_meta=False) == request.DataSet.getvalue(),
                event.assoc.requestor.ae_title,
                event.assoc.requestor.address,
            )
        )
        if event.dataset.PatientID == "FAIL":
            raise RuntimeError("the handler failed")
        status = Dataset()
        status.Status = 0xA700
        status.ErrorComment = "out of resources"
        return status if event.dataset.PatientID == "FULL" else 0x0000

    answers = {}
    for path in (True, False):
        server = _parity_server(path, on_store)
        try:
            scu = AE(ae_title="SENDER")
            scu.add_requested_context(CTImageStorage, [ImplicitVRLittleEndian])
            assoc = scu.associate("127.0.0.1", server.server_address[1], ae_title="PARITY")
            got = []
            for patient in ("OK", "FULL", "FAIL"):
                ds = _to_send(instance(PatientID=patient), ImplicitVRLittleEndian)
                rsp = assoc.send_c_store(ds, originator_aet="MOVER", originator_id=9)
                got.append((rsp.Status, str(rsp.get("ErrorComment", ""))))
            answers[path] = got
            assoc.release()
        finally:
            server.shutdown()
    assert seen[True] == seen[False]
    assert seen[True][0][0] == "PresentationContextTuple" and seen[True][0][6] == "MOVER"
    assert answers[True] == answers[False]
    assert [s for s, _ in answers[True]] == [0x0000, 0xA700, 0xC211]
    assert answers[True][1][1] == "out of resources"
    assert len(served) == 1


@pytest.mark.parametrize(
    "other",
    [StudyRootQueryRetrieveInformationModelGet, StorageCommitmentPushModel, None],
    ids=["with-c-get", "with-commitment", "store-path-off"],
)
def test_what_the_direct_path_leaves_to_pynetdicom(
    archive: Archive, served: list[Any], other: str | None
) -> None:
    """Storage proposed beside C-GET or storage commitment, or with `dimse_store_path` off,
    is pynetdicom's to serve, and stores all the same."""
    archive.settings.dimse_store_path = other is not None
    server = DimseServer(archive)
    server.start()
    try:
        ae = AE(ae_title="MIXED")
        ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
        if other is not None:
            ae.add_requested_context(other)
        assoc = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
        ds = _to_send(instance())
        assert assoc.send_c_store(ds).Status == 0x0000
        assoc.release()
        assert _stored(archive, str(ds.SOPInstanceUID)).PatientID == ds.PatientID
    finally:
        server.stop(1)
    assert served == []


def test_an_abort_mid_data_set_stores_nothing(
    archive: Archive, pair: tuple[DimseServer, DimseServer], served: list[Any]
) -> None:
    """A requestor that sends half an object's data set and aborts leaves nothing stored, and
    the association ends (the next one stores)."""
    own, _plain = pair
    ae = AE(ae_title="HALF")
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", own.port, ae_title="HOUNSFIELD")
    ds = _to_send(instance())
    data = bytes(encode(ds, False, True))
    context_id = assoc.accepted_contexts[0].context_id
    primitive = C_STORE()
    primitive.MessageID = 1
    primitive.AffectedSOPClassUID = CTImageStorage
    primitive.AffectedSOPInstanceUID = ds.SOPInstanceUID
    primitive.Priority = 0
    command = fastsend.encode_command("C-STORE-RQ", primitive, True)
    assert command is not None
    half = fastsend.pdus(command, context_id, True, True, 0)
    half += fastsend.pdus(data[: len(data) // 2], context_id, False, False, 0)
    assoc.dul.socket.socket.sendall(half)
    time.sleep(0.2)
    assoc.abort()
    deadline = time.monotonic() + 5
    while own.ae.active_associations and time.monotonic() < deadline:
        time.sleep(0.05)
    assert own.ae.active_associations == []
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.SOPInstanceUID = ds.SOPInstanceUID
    assert locate(archive, query) == []
    again = ae.associate("127.0.0.1", own.port, ae_title="HOUNSFIELD")
    assert again.send_c_store(ds).Status == 0x0000
    again.release()
    assert len(served) == 2
