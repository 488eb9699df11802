"""WADO-RS through dicomweb-client: instances, series, studies, metadata, frames, bulkdata."""

from __future__ import annotations

from io import BytesIO

import httpx
import numpy as np
import pytest
import requests
from dicomweb_client import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

from hounsfield.archive import metadata
from hounsfield.archive.context import Archive
from hounsfield.archive.query import locate
from tests.data import dataset_bytes, local
from tests.web.conftest import put_files

RELATED = 'multipart/related; type="application/dicom"'


def _ids(name: str) -> tuple[str, str, str]:
    ds = dcmread(local(name), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def test_instance_series_study(archive: Archive, client: DICOMwebClient) -> None:
    put_files(archive, "RG1_UNCR.dcm", "RG1_J2KR.dcm", "MR_small.dcm")
    study, series, sop = _ids("RG1_J2KR.dcm")
    stored = client.retrieve_instance(study, series, sop, media_types=(("application/dicom", "*"),))
    assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    assert stored.PixelData == dcmread(local("RG1_J2KR.dcm")).PixelData
    # Byte for byte: the dataset part equals what was sent in.
    raw = requests.get(
        f"{client.base_url}/studies/{study}/series/{series}/instances/{sop}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert dataset_bytes(local("RG1_J2KR.dcm")) in raw.content

    decoded = client.retrieve_instance(
        study, series, sop, media_types=(("application/dicom", ExplicitVRLittleEndian),)
    )
    assert decoded.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(decoded.pixel_array, dcmread(local("RG1_J2KR.dcm")).pixel_array)

    j2k = client.retrieve_instance(
        study,
        series,
        _ids("RG1_UNCR.dcm")[2],
        media_types=(("application/dicom", JPEG2000Lossless),),
    )
    assert j2k.file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert np.array_equal(j2k.pixel_array, dcmread(local("RG1_UNCR.dcm")).pixel_array)

    in_series = client.retrieve_series(study, series, media_types=(("application/dicom", "*"),))
    assert sorted(d.SOPInstanceUID for d in in_series) == sorted([_ids("RG1_UNCR.dcm")[2], sop])
    whole = list(client.iter_study(study, media_types=(("application/dicom", "*"),)))
    assert len(whole) == 2
    mr = _ids("MR_small.dcm")
    only = client.retrieve_study(mr[0])
    assert only[0].PixelData == dcmread(local("MR_small.dcm")).PixelData


def test_retrieve_refusals(archive: Archive, client: DICOMwebClient, web: str) -> None:
    put_files(archive, "MR_small.dcm")
    study = _ids("MR_small.dcm")[0]
    base = f"{web}/dicomweb"
    missing = requests.get(f"{base}/studies/1.2.3.4")
    assert missing.status_code == 404
    assert "1.2.3.4" in missing.json()["error"]
    wrong = requests.get(f"{base}/studies/{study}", headers={"Accept": "text/html"})
    assert wrong.status_code == 406
    jpeg = requests.get(
        f"{base}/studies/{study}",
        headers={
            "Accept": 'multipart/related; type="application/dicom"; '
            "transfer-syntax=1.2.840.10008.1.2.4.50"
        },
    )
    assert jpeg.status_code == 406
    assert "1.2.840.10008.1.2.4.50" in jpeg.json()["error"]
    bad = requests.get(f"{base}/studies/{study}/series/x.y")
    assert bad.status_code == 400


def test_metadata(archive: Archive, client: DICOMwebClient) -> None:
    put_files(archive, "MR-SIEMENS-DICOM-WithOverlays.dcm", "CT_small.dcm")
    study, series, sop = _ids("MR-SIEMENS-DICOM-WithOverlays.dcm")
    original = dcmread(local("MR-SIEMENS-DICOM-WithOverlays.dcm"))
    [instance] = client.retrieve_study_metadata(study)
    assert instance["00080018"]["Value"] == [sop]
    assert instance["00100010"]["Value"][0]["Alphabetic"] == str(original.PatientName)
    overlay = instance["60003000"]
    assert "BulkDataURI" in overlay and "InlineBinary" not in overlay
    assert client.retrieve_bulkdata(overlay["BulkDataURI"])[0] == original[0x60003000].value
    pixels = instance["7FE00010"]["BulkDataURI"]
    assert client.retrieve_bulkdata(pixels)[0] == original.PixelData
    assert client.retrieve_series_metadata(study, series) == [instance]
    assert client.retrieve_instance_metadata(study, series, sop) == instance

    doc = metadata.folder(archive, archive.default_partition) / f"{study}.json.gz"
    assert doc.is_file()
    put_files(archive, "MR_small.dcm")  # another study: this document stays current
    assert client.retrieve_study_metadata(study) == [instance]
    doc.unlink()
    assert metadata.rebuild(archive, study) == 1
    assert client.retrieve_study_metadata(study) == [instance]


def test_metadata_follows_ingest(archive: Archive, client: DICOMwebClient) -> None:
    put_files(archive, "RG1_UNCR.dcm")
    study = _ids("RG1_UNCR.dcm")[0]
    assert len(client.retrieve_study_metadata(study)) == 1
    put_files(archive, "RG1_J2KR.dcm")
    after = client.retrieve_study_metadata(study)
    assert len(after) == 2
    syntaxes = {m["00020010"]["Value"][0] for m in after}
    assert syntaxes == {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"}


def test_frames(archive: Archive, client: DICOMwebClient) -> None:
    put_files(archive, "emri_small.dcm", "SC_rgb_rle_2frame.dcm", "RG3_J2KR.dcm")
    study, series, sop = _ids("emri_small.dcm")
    original = dcmread(local("emri_small.dcm"))
    frames = client.retrieve_instance_frames(study, series, sop, frame_numbers=[1, 3, 10])
    size = original.Rows * original.Columns * 2
    assert frames == [original.PixelData[i * size : (i + 1) * size] for i in (0, 2, 9)]

    study, series, sop = _ids("SC_rgb_rle_2frame.dcm")
    rle = dcmread(local("SC_rgb_rle_2frame.dcm"))
    [second] = client.retrieve_instance_frames(
        study, series, sop, frame_numbers=[2], media_types=("application/octet-stream",)
    )
    assert second == np.ascontiguousarray(rle.pixel_array[1]).tobytes()
    [as_stored] = client.retrieve_instance_frames(study, series, sop, frame_numbers=[2])
    assert as_stored == get_frame(rle.PixelData, 1, number_of_frames=2)

    study, series, sop = _ids("RG3_J2KR.dcm")
    [j2k] = client.retrieve_instance_frames(
        study,
        series,
        sop,
        frame_numbers=[1],
        media_types=(("image/jp2", "1.2.840.10008.1.2.4.90"),),
    )
    assert j2k == get_frame(dcmread(local("RG3_J2KR.dcm")).PixelData, 0, number_of_frames=1)
    with pytest.raises(requests.HTTPError) as info:
        client.retrieve_instance_frames(study, series, sop, frame_numbers=[2])
    assert info.value.response.status_code == 400


def test_bulkdata_range(archive: Archive, client: DICOMwebClient, web: str) -> None:
    put_files(archive, "CT_small.dcm")
    study, series, sop = _ids("CT_small.dcm")
    pixel_data = dcmread(local("CT_small.dcm")).PixelData
    url = f"{web}/dicomweb/studies/{study}/series/{series}/instances/{sop}/bulkdata/7FE00010"
    [part] = client.retrieve_bulkdata(url, byte_range=(100, 1099))
    assert part == pixel_data[100:1100]
    plain = requests.get(url, headers={"Accept": "application/octet-stream", "Range": "bytes=-10"})
    assert plain.status_code == 206
    assert plain.content == pixel_data[-10:]
    assert (
        plain.headers["Content-Range"]
        == f"bytes {len(pixel_data) - 10}-{len(pixel_data) - 1}/{len(pixel_data)}"
    )
    outside = requests.get(url, headers={"Range": f"bytes={len(pixel_data)}-"})
    assert outside.status_code == 416
    text = requests.get(url.replace("7FE00010", "00100010"))
    assert text.status_code == 404
    assert "not a binary value" in text.json()["error"]
    assert requests.get(url.replace("7FE00010", "60003000")).status_code == 404


def test_stored_via_store_is_read_back_byte_for_byte(
    archive: Archive, client: DICOMwebClient
) -> None:
    put_files(archive, "rtplan.dcm")
    study, series, sop = _ids("rtplan.dcm")
    # rtplan.dcm is implicit VR: '*' sends it as stored, the default converts it.
    stored = client.retrieve_instance(study, series, sop, media_types=(("application/dicom", "*"),))
    buf = BytesIO()
    stored.save_as(buf, enforce_file_format=True)
    assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    converted = client.retrieve_study(study)[0]  # no transfer-syntax: explicit VR LE
    assert converted.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert (
        converted.BeamSequence[0].BeamName == dcmread(local("rtplan.dcm")).BeamSequence[0].BeamName
    )


def test_metadata_rebuild_command(archive: Archive) -> None:
    from typer.testing import CliRunner

    from hounsfield.cli import app

    put_files(archive, "CT_small.dcm", "MR_small.dcm")
    study = _ids("CT_small.dcm")[0]
    folder = metadata.folder(archive, archive.default_partition)
    env = {
        "HOUNSFIELD_DATA_DIR": str(archive.settings.data_dir),
        "HOUNSFIELD_DATABASE_URL": archive.settings.database_url or "",
    }
    one = CliRunner().invoke(app, ["metadata", "rebuild", "--study", study], env=env)
    assert one.exit_code == 0, one.output
    assert (folder / f"{study}.json.gz").is_file()
    every = CliRunner().invoke(app, ["metadata", "rebuild"], env=env)
    assert "rebuilt 2 studies, 2 instances" in every.output
    unknown = CliRunner().invoke(app, ["metadata", "rebuild", "--study", "1.2.3"], env=env)
    assert unknown.exit_code == 2 and "no study 1.2.3" in unknown.output


def test_a_retrieve_as_stored_announces_its_length(
    archive: Archive, client: DICOMwebClient
) -> None:
    put_files(archive, "RG1_UNCR.dcm", "RG1_J2KR.dcm")
    study, series, _ = _ids("RG1_J2KR.dcm")
    url = f"{client.base_url}/studies/{study}/series/{series}"
    stored = httpx.get(url, headers={"Accept": f"{RELATED}; transfer-syntax=*"})
    assert stored.status_code == 200
    assert stored.headers["content-length"] == str(len(stored.content))
    assert "transfer-encoding" not in stored.headers
    for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm"):
        assert dataset_bytes(local(name)) in stored.content
    # Transcoded on the way: the length is not known up front.
    converted = httpx.get(url, headers={"Accept": RELATED})
    assert converted.headers.get("transfer-encoding") == "chunked"
    assert len(client.retrieve_series(study, series)) == 2


def test_a_file_shorter_than_indexed_breaks_the_answer(
    archive: Archive, client: DICOMwebClient
) -> None:
    put_files(archive, "RG1_UNCR.dcm")
    study, series, sop = _ids("RG1_UNCR.dcm")
    ident = Dataset()
    ident.QueryRetrieveLevel = "IMAGE"
    ident.StudyInstanceUID, ident.SeriesInstanceUID, ident.SOPInstanceUID = study, series, sop
    path = locate(archive, ident)[0].path
    path.write_bytes(path.read_bytes()[:-100])
    url = f"{client.base_url}/studies/{study}/series/{series}/instances/{sop}"
    # Not a body that looks whole: the client sees the answer cut short.
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url, headers={"Accept": f"{RELATED}; transfer-syntax=*"})
