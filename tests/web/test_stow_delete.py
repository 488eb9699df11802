"""STOW-RS and DELETE through dicomweb-client, and the DIMSE <-> DICOMweb round trips."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
import requests
from dicomweb_client import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from hounsfield.archive.context import Archive
from hounsfield.archive.query import locate
from hounsfield.dimse.server import DimseServer
from tests.data import local


def _ds(name: str) -> Dataset:
    return dcmread(local(name))


def _uids(ds: Dataset) -> tuple[str, str, str]:
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _refs(result: Dataset, keyword: str) -> list[str]:
    return [str(item.ReferencedSOPInstanceUID) for item in result.get(keyword, [])]


def test_store_good_duplicate_and_mixed(archive: Archive, client: DICOMwebClient, web: str) -> None:
    ct, mr = _ds("CT_small.dcm"), _ds("MR_small.dcm")
    result = client.store_instances([ct, mr])
    assert sorted(_refs(result, "ReferencedSOPSequence")) == sorted(
        [str(ct.SOPInstanceUID), str(mr.SOPInstanceUID)]
    )
    assert "FailedSOPSequence" not in result
    stored = client.retrieve_instance(*_uids(ct))
    assert stored.PixelData == ct.PixelData
    again = client.store_instances([ct])  # identical again: still a success
    assert _refs(again, "ReferencedSOPSequence") == [str(ct.SOPInstanceUID)]

    boundary = "b0undary"
    good = local("rtplan.dcm").read_bytes()
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + good
        + f"\r\n--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + b"\x00" * 128
        + b"DICM"
        + b"garbage"
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    mixed = requests.post(
        f"{web}/dicomweb/studies", data=body, headers={"Content-Type": content_type}
    )
    assert mixed.status_code == 202
    answer = Dataset.from_json(mixed.json())
    assert _refs(answer, "ReferencedSOPSequence") == [str(_ds("rtplan.dcm").SOPInstanceUID)]
    assert answer.FailedSOPSequence[0].FailureReason == 0xC000

    only_bad = body.replace(good, b"not dicom at all")
    refused = requests.post(
        f"{web}/dicomweb/studies", data=only_bad, headers={"Content-Type": content_type}
    )
    assert refused.status_code == 409
    assert len(Dataset.from_json(refused.json()).FailedSOPSequence) == 2


def test_store_to_study_and_bad_requests(
    archive: Archive, client: DICOMwebClient, web: str
) -> None:
    ct = _ds("CT_small.dcm")
    with pytest.raises(requests.HTTPError) as info:
        client.store_instances([_ds("MR_small.dcm")], study_instance_uid=str(ct.StudyInstanceUID))
    assert info.value.response.status_code == 409
    failed = Dataset.from_json(info.value.response.json()).FailedSOPSequence[0]
    assert failed.FailureReason == 0xC409
    ok = client.store_instances([ct], study_instance_uid=str(ct.StudyInstanceUID))
    assert ok.RetrieveURL.endswith(f"/studies/{ct.StudyInstanceUID}")

    url = f"{web}/dicomweb/studies"
    wrong_type = requests.post(url, data=b"{}", headers={"Content-Type": "application/json"})
    assert wrong_type.status_code == 415
    json_parts = 'multipart/related; type="application/dicom+json"; boundary=x'
    assert (
        requests.post(url, data=b"--x--", headers={"Content-Type": json_parts}).status_code == 415
    )
    framing = 'multipart/related; type="application/dicom"; boundary=x'
    unclosed = requests.post(url, data=b"--x\r\n\r\nabc", headers={"Content-Type": framing})
    assert unclosed.status_code == 400
    assert "boundary" in unclosed.json()["error"]
    no_boundary = requests.post(url, data=b"abc", headers={"Content-Type": "multipart/related"})
    assert no_boundary.status_code == 400


def test_delete_levels(archive: Archive, client: DICOMwebClient) -> None:
    rg_uncr, rg_j2k, mr = _ds("RG1_UNCR.dcm"), _ds("RG1_J2KR.dcm"), _ds("MR_small.dcm")
    client.store_instances([rg_uncr, rg_j2k, mr])
    study, series, sop = _uids(rg_uncr)
    path = locate_one(archive, rg_uncr)
    client.delete_instance(study, series, sop)
    assert not path.exists()
    assert [i["00080018"]["Value"][0] for i in client.search_for_instances(study)] == [
        str(rg_j2k.SOPInstanceUID)
    ]
    assert len(client.retrieve_study_metadata(study)) == 1
    client.delete_series(study, series)
    assert client.search_for_studies(search_filters={"StudyInstanceUID": study}) == []
    client.delete_study(_uids(mr)[0])
    assert client.search_for_studies() == []
    with pytest.raises(requests.HTTPError) as info:
        client.delete_study(study)
    assert info.value.response.status_code == 404


def locate_one(archive: Archive, ds: Dataset) -> Path:
    ident = Dataset()
    ident.QueryRetrieveLevel = "IMAGE"
    ident.StudyInstanceUID, ident.SeriesInstanceUID, ident.SOPInstanceUID = _uids(ds)
    return locate(archive, ident)[0].path


def test_dimse_and_dicomweb_meet(
    archive: Archive, server: DimseServer, client: DICOMwebClient
) -> None:
    ct = _ds("CT_small.dcm")
    ae = AE(ae_title="SCU")
    ae.add_requested_context(CTImageStorage, ct.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="HOUNSFIELD")
    assert assoc.is_established
    assert assoc.send_c_store(ct).Status == 0x0000
    assoc.release()
    [found] = client.search_for_instances(search_filters={"SOPInstanceUID": str(ct.SOPInstanceUID)})
    assert found["00100020"]["Value"] == ["1CT1"]
    assert client.retrieve_instance(*_uids(ct)).PixelData == ct.PixelData

    mr = _ds("MR_small.dcm")
    client.store_instances([mr])
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = mr.StudyInstanceUID
    query.SeriesInstanceUID = mr.SeriesInstanceUID
    query.SOPInstanceUID = ""
    received: list[Dataset] = []

    def on_store(event: evt.Event) -> int:
        received.append(event.dataset)
        return 0x0000

    ae = AE(ae_title="SCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(mr.SOPClassUID, mr.file_meta.TransferSyntaxUID)
    role = build_role(mr.SOPClassUID, scp_role=True)
    assoc = ae.associate(
        "127.0.0.1",
        server.port,
        ae_title="HOUNSFIELD",
        ext_neg=[role],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    answers = [
        ident
        for status, ident in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
        if status.Status == 0xFF00
    ]
    assert [str(a.SOPInstanceUID) for a in answers] == [str(mr.SOPInstanceUID)]
    statuses = [
        s.Status for s, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)
    ]
    assoc.release()
    assert statuses[-1] == 0x0000
    assert [r.PixelData for r in received] == [mr.PixelData]
    buf = BytesIO()
    received[0].file_meta = mr.file_meta
    received[0].save_as(buf, enforce_file_format=True)
