"""Reads fall back to the mirror: WADO-RS, frames, bulk data, rendered images and WADO-URI
serve the mirror's copy while the primary file is missing or truncated. STOW-RS writes to a
synchronous mirror before it answers, and fails the part cleanly when the mirror cannot."""

from __future__ import annotations

from pathlib import Path

import requests
from dicomweb_client import DICOMwebClient
from pydicom import dcmread

from hounsfield.archive.context import Archive
from tests.data import dataset_bytes, local
from tests.mirror_helpers import add_mirror, block, rows_of
from tests.web.conftest import put_files

DICOM_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _ids(name: str) -> tuple[str, str, str]:
    ds = dcmread(local(name), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def test_every_reader_serves_the_mirror_copy_of_a_missing_primary(
    archive: Archive, client: DICOMwebClient, web: str, tmp_path: Path
) -> None:
    mirror = add_mirror(archive, tmp_path / "mirror")
    put_files(archive, "MR_small.dcm", "CT_small.dcm")
    study, series, sop = _ids("MR_small.dcm")
    primary = rows_of(archive, sop)[archive.settings.storage_dir.resolve()]
    assert rows_of(archive, sop)[mirror].intact()
    primary.file.unlink()

    instance_url = f"{client.base_url}/studies/{study}/series/{series}/instances/{sop}"
    raw = requests.get(instance_url, headers={"Accept": DICOM_AS_STORED})
    assert raw.status_code == 200 and dataset_bytes(local("MR_small.dcm")) in raw.content
    whole_study = requests.get(
        f"{client.base_url}/studies/{study}", headers={"Accept": DICOM_AS_STORED}
    )
    assert whole_study.status_code == 200
    assert dataset_bytes(local("MR_small.dcm")) in whole_study.content

    original = dcmread(local("MR_small.dcm"))
    (frame,) = client.retrieve_instance_frames(study, series, sop, frame_numbers=[1])
    assert frame == original.PixelData
    bulk = requests.get(
        f"{instance_url}/bulkdata/7FE00010", headers={"Accept": "application/octet-stream"}
    )
    assert bulk.status_code == 200 and bulk.content == original.PixelData
    rendered = requests.get(f"{instance_url}/rendered", headers={"Accept": "image/png"})
    assert rendered.status_code == 200 and rendered.content.startswith(b"\x89PNG")
    uri = requests.get(
        f"{web}/dicomweb/wado",
        params={
            "requestType": "WADO",
            "studyUID": study,
            "seriesUID": series,
            "objectUID": sop,
            "contentType": "application/dicom",
            "transferSyntax": str(original.file_meta.TransferSyntaxUID),
        },
    )
    assert uri.status_code == 200 and dataset_bytes(local("MR_small.dcm")) in uri.content


def test_a_truncated_primary_is_read_from_the_mirror(
    archive: Archive, client: DICOMwebClient, tmp_path: Path
) -> None:
    add_mirror(archive, tmp_path / "mirror")
    put_files(archive, "CT_small.dcm")
    study, series, sop = _ids("CT_small.dcm")
    primary = rows_of(archive, sop)[archive.settings.storage_dir.resolve()]
    primary.file.write_bytes(primary.file.read_bytes()[:1000])
    got = client.retrieve_instance(study, series, sop, media_types=(("application/dicom", "*"),))
    assert got.PixelData == dcmread(local("CT_small.dcm")).PixelData


def test_without_a_copy_a_missing_file_is_still_an_error(
    archive: Archive, client: DICOMwebClient
) -> None:
    put_files(archive, "CT_small.dcm")
    study, series, sop = _ids("CT_small.dcm")
    rows_of(archive, sop)[archive.settings.storage_dir.resolve()].file.unlink()
    url = f"{client.base_url}/studies/{study}/series/{series}/instances/{sop}/frames/1"
    answer = requests.get(url, headers={"Accept": "*/*"})
    assert answer.status_code >= 400 and "No such file" in answer.text


def _stow(base_url: str, name: str) -> requests.Response:
    boundary = "mirrored"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + local(name).read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    kind = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return requests.post(f"{base_url}/studies", data=body, headers={"Content-Type": kind})


def test_stow_writes_to_a_sync_mirror_or_fails_cleanly(
    archive: Archive, client: DICOMwebClient, tmp_path: Path
) -> None:
    mirror = add_mirror(archive, tmp_path / "mirror")
    assert _stow(client.base_url, "CT_small.dcm").status_code == 200
    _study, _series, sop = _ids("CT_small.dcm")
    assert rows_of(archive, sop)[mirror].intact()

    block(mirror)
    refused = _stow(client.base_url, "MR_small.dcm")
    assert refused.status_code == 409
    (failed,) = refused.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xA700]  # FailureReason: out of resources
    assert rows_of(archive, _ids("MR_small.dcm")[2]) == {}
    assert len(list(archive.settings.storage_dir.rglob("*.dcm"))) == 1  # the CT only
