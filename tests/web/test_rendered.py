"""Rendered images, thumbnails, reduced-resolution decoding, the render cache, WADO-URI, CORS."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import requests
from dicomweb_client import DICOMwebClient
from PIL import Image
from pydicom import dcmread

from hounsfield.archive.context import Archive
from hounsfield.imaging.decode import decode_frame
from hounsfield.imaging.pixels import open_source
from tests.conftest import make_archive, make_settings
from tests.data import local
from tests.web.conftest import put_files


def _ids(name: str) -> tuple[str, str, str]:
    ds = dcmread(local(name), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _image(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


def test_rendered_at_viewport_with_reduced_decode(
    archive: Archive, client: DICOMwebClient, web: str
) -> None:
    put_files(archive, "RG1_J2KR.dcm", "RG1_UNCR.dcm")
    study, series, sop = _ids("RG1_J2KR.dcm")
    jpeg = client.retrieve_instance_rendered(
        study, series, sop, media_types=("image/jpeg",), params={"viewport": "512,512"}
    )
    image = _image(jpeg)
    assert image.format == "JPEG" and max(image.size) == 512 and image.mode == "L"
    url = f"{web}/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered"
    first = requests.get(url, params={"viewport": "256,256"}, headers={"Accept": "image/png"})
    assert first.headers["X-Rendered-By"] == "j2k-reduce"
    assert first.headers["Content-Type"] == "image/png"
    again = requests.get(url, params={"viewport": "256,256"}, headers={"Accept": "image/png"})
    assert again.headers["X-Rendered-By"] == "cache"
    assert again.content == first.content
    uncompressed = _ids("RG1_UNCR.dcm")[2]
    decimated = requests.get(url.replace(sop, uncompressed), params={"viewport": "256,256"})
    assert decimated.headers["X-Rendered-By"] == "decimate"
    # Same picture from both encodings (MONOCHROME1 inverted, default window).
    a = np.asarray(_image(first.content), dtype=float)
    b = np.asarray(_image(decimated.content), dtype=float)
    assert a.shape == b.shape and np.abs(a - b).mean() < 8


def test_reduced_decode_matches_full_decode() -> None:
    src = open_source(local("RG3_J2KR.dcm"))
    small = decode_frame(src, 0, (440, 440))
    assert small.method == "j2k-reduce" and small.pixels.shape == (440, 440)
    full = dcmread(local("RG3_J2KR.dcm")).pixel_array.astype(float)
    coarse = full.reshape(440, 4, 440, 4).mean(axis=(1, 3))
    assert np.abs(small.pixels.astype(float) - coarse).mean() < 0.02 * full.max()
    native = open_source(local("RG3_UNCR.dcm"))
    step = decode_frame(native, 0, (440, 440))
    assert np.array_equal(step.pixels, dcmread(local("RG3_UNCR.dcm")).pixel_array[::4, ::4])


def test_window_frames_photometrics_thumbnails(
    archive: Archive, client: DICOMwebClient, web: str
) -> None:
    put_files(archive, "CT_small.dcm", "SC_rgb_rle_2frame.dcm", "emri_small.dcm", "rtplan.dcm")
    study, series, sop = _ids("CT_small.dcm")
    narrow = client.retrieve_instance_rendered(
        study, series, sop, media_types=("image/png",), params={"window": "40,80"}
    )
    wide = client.retrieve_instance_rendered(
        study, series, sop, media_types=("image/png",), params={"window": "40,4000,LINEAR"}
    )
    assert _image(narrow).size == (128, 128) and narrow != wide
    rgb = _ids("SC_rgb_rle_2frame.dcm")
    frame2 = client.retrieve_instance_frames_rendered(
        *rgb, frame_numbers=[2], media_types=("image/png",)
    )
    pixels = np.asarray(_image(frame2))
    assert pixels.shape == (100, 100, 3)
    assert np.array_equal(pixels, dcmread(local("SC_rgb_rle_2frame.dcm")).pixel_array[1])
    multi = _ids("emri_small.dcm")
    assert _image(client.retrieve_series_rendered(multi[0], multi[1], media_types=("image/jpeg",)))
    base = f"{web}/dicomweb/studies/{study}"
    for url in (
        f"{base}/thumbnail",
        f"{base}/series/{series}/thumbnail",
        f"{base}/series/{series}/instances/{sop}/thumbnail",
        f"{base}/series/{series}/instances/{sop}/frames/1/thumbnail",
        f"{base}/rendered",
    ):
        answer = requests.get(url, headers={"Accept": "image/jpeg"})
        assert answer.status_code == 200, url
        assert max(_image(answer.content).size) <= 512
    plan = _ids("rtplan.dcm")
    no_pixels = requests.get(f"{web}/dicomweb/studies/{plan[0]}/thumbnail")
    assert no_pixels.status_code == 404
    for params, accept, status in (
        ({"window": "40"}, "image/jpeg", 400),
        ({"viewport": "0,10"}, "image/jpeg", 400),
        ({"quality": "500"}, "image/jpeg", 400),
        ({}, "image/gif", 406),
    ):
        bad = requests.get(
            f"{base}/series/{series}/instances/{sop}/rendered",
            params=params,
            headers={"Accept": accept},
        )
        assert bad.status_code == status, params
    gone = requests.get(f"{base}/series/{series}/instances/{sop}/frames/2/rendered")
    assert gone.status_code == 404


def test_wado_uri(archive: Archive, web: str) -> None:
    put_files(archive, "MR_small.dcm", "MR_small_jp2klossless.dcm")
    study, series, sop = _ids("MR_small.dcm")
    params = {"requestType": "WADO", "studyUID": study, "seriesUID": series, "objectUID": sop}
    jpeg = requests.get(f"{web}/wado", params=params)
    assert jpeg.status_code == 404  # WADO-URI lives under /dicomweb
    jpeg = requests.get(f"{web}/dicomweb/wado", params=params | {"rows": "32"})
    assert jpeg.headers["Content-Type"] == "image/jpeg" and _image(jpeg.content).size == (32, 32)
    dicom = requests.get(f"{web}/dicomweb", params=params | {"contentType": "application/dicom"})
    assert dcmread(BytesIO(dicom.content)).PixelData == dcmread(local("MR_small.dcm")).PixelData
    assert requests.get(f"{web}/dicomweb/wado", params={"requestType": "X"}).status_code == 400


def test_cors(tmp_path: Path, database_url: str) -> None:
    from fastapi.testclient import TestClient

    from hounsfield.web.app import create_app

    settings = make_settings(tmp_path, database_url, cors_origins=["https://viewer.example"])
    archive = make_archive(settings)
    try:
        with TestClient(create_app(archive)) as http:
            pre = http.options(
                "/dicomweb/studies",
                headers={
                    "Origin": "https://viewer.example",
                    "Access-Control-Request-Method": "GET",
                },
            )
            assert pre.headers["access-control-allow-origin"] == "https://viewer.example"
            got = http.get("/dicomweb/studies", headers={"Origin": "https://viewer.example"})
            assert got.headers["access-control-allow-origin"] == "https://viewer.example"
            other = http.get("/dicomweb/studies", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
    finally:
        archive.close()


def test_viewport_source_region_crops_and_flips(
    archive: Archive, client: DICOMwebClient, web: str
) -> None:
    """viewport=vw,vh,sx,sy,sw,sh renders only the source region; negative sizes flip it."""
    put_files(archive, "SC_rgb_rle_2frame.dcm")
    study, series, sop = _ids("SC_rgb_rle_2frame.dcm")
    source = dcmread(local("SC_rgb_rle_2frame.dcm")).pixel_array[0]
    url = f"{web}/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered"
    png = {"Accept": "image/png"}
    crop = requests.get(url, params={"viewport": "40,20,10,30,40,20"}, headers=png)
    assert crop.status_code == 200
    assert np.array_equal(np.asarray(_image(crop.content)), source[30:50, 10:50])
    flipped = requests.get(url, params={"viewport": "40,20,50,30,-40,20"}, headers=png)
    assert np.array_equal(np.asarray(_image(flipped.content)), source[30:50, 10:50][:, ::-1])
    outside = requests.get(url, params={"viewport": "40,20,500,500,10,10"}, headers=png)
    assert outside.status_code == 400 and "outside the image" in outside.text
    assert requests.get(url, params={"viewport": "40,20,0,0,0,10"}, headers=png).status_code == 400
