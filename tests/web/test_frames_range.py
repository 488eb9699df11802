"""WADO-RS frames of HTJ2K RPCL objects as Cornerstone reads them: stored codestreams with their
transfer syntax, byte ranges over an identical body, ETags, image/jphc and CORS for Range."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import requests
from PIL import Image
from pydicom import dcmread
from pydicom.encaps import generate_frames

from hounsfield.archive.context import Archive
from hounsfield.imaging.codestream import main_header
from hounsfield.lifecycle.compress import compress_study_uid
from hounsfield.web.dicomweb import multipart, ranged
from tests.conftest import make_archive, make_settings
from tests.data import local
from tests.web.conftest import put_files

RPCL = "1.2.840.10008.1.2.4.202"
CORNERSTONE = "multipart/related; type=application/octet-stream; transfer-syntax=*"


def _stored_rpcl(archive: Archive, name: str) -> tuple[str, bytes]:
    """Import `name`, compress its study to HTJ2K RPCL; its frames URL and its codestream."""
    put_files(archive, name)
    ds = dcmread(local(name), stop_before_pixels=True)
    report = compress_study_uid(archive, str(ds.StudyInstanceUID), "htj2k-lossless-rpcl")
    assert report.compressed == 1, report
    (path,) = archive.settings.storage_dir.rglob("*.rpcl.dcm")
    (code,) = generate_frames(dcmread(path).PixelData, number_of_frames=1)
    url = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/1"
    )
    return url, code


def _parts(response: requests.Response) -> list[tuple[dict[str, str], bytes]]:
    _media, boundary = multipart.boundary_of(response.headers["content-type"])
    body = response.content
    delimiter = f"--{boundary}".encode()
    assert body.startswith(delimiter + b"\r\n") and body.endswith(delimiter + b"--\r\n")
    out = []
    for chunk in body[len(delimiter) + 2 : -len(delimiter) - 4].split(
        b"\r\n" + delimiter + b"\r\n"
    ):
        head, _, data = chunk.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        out.append(
            ({k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}, data)
        )
    out[-1] = (out[-1][0], out[-1][1].removesuffix(b"\r\n"))
    return out


@pytest.mark.parametrize("whole_body", [True, False], ids=["answered-whole", "streamed"])
def test_frames_as_cornerstone_streams_them(
    archive: Archive, web: str, whole_body: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not whole_body:  # as a frame larger than ranged.INLINE is answered
        monkeypatch.setattr(ranged, "INLINE", 0)
    path, code = _stored_rpcl(archive, "RG3_UNCR.dcm")
    url = web + path
    whole = requests.get(url, headers={"Accept": CORNERSTONE})
    assert whole.status_code == 200
    assert whole.headers["content-type"].startswith("multipart/related")
    assert f"transfer-syntax={RPCL}" in whole.headers["content-type"]
    assert whole.headers["accept-ranges"] == "bytes"
    assert int(whole.headers["content-length"]) == len(whole.content)
    ((headers, data),) = _parts(whole)
    assert headers["content-type"] == f"application/octet-stream; transfer-syntax={RPCL}"
    assert data == code
    pixels = imagecodecs.htj2k_decode(data)
    assert np.array_equal(pixels, dcmread(local("RG3_UNCR.dcm")).pixel_array)

    again = requests.get(url, headers={"Accept": CORNERSTONE})
    assert again.content == whole.content and again.headers["etag"] == whole.headers["etag"]
    assert whole.headers["etag"].startswith('"')  # strong

    # Cornerstone's byte-range mode: 64 KB first, then the rest; the bytes are concatenated.
    first = requests.get(url, headers={"Accept": CORNERSTONE, "Range": "bytes=0-65535"})
    assert first.status_code == 206
    total = len(whole.content)
    assert first.headers["content-range"] == f"bytes 0-65535/{total}"
    assert first.headers["content-type"] == whole.headers["content-type"]
    rest = requests.get(url, headers={"Accept": CORNERSTONE, "Range": "bytes=65536-"})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes 65536-{total - 1}/{total}"
    assert first.content + rest.content == whole.content

    # The first 64 KB already hold a preview: the resolutions below 1/8 size.
    header = main_header(code)
    start = whole.content.index(code[:64])
    end = header.resolution_end(3)
    assert end is not None and start + end < 65536
    preview = first.content[start : start + end] + b"\xff\xd9"
    assert np.array_equal(
        imagecodecs.htj2k_decode(preview, skipres=3), imagecodecs.htj2k_decode(code, skipres=3)
    )

    etag = whole.headers["etag"]
    cached = requests.get(url, headers={"Accept": CORNERSTONE, "If-None-Match": etag})
    assert cached.status_code == 304 and cached.headers["etag"] == etag and not cached.content
    stale = requests.get(
        url, headers={"Accept": CORNERSTONE, "Range": "bytes=0-9", "If-Range": '"other"'}
    )
    assert stale.status_code == 200 and stale.content == whole.content
    outside = requests.get(url, headers={"Accept": CORNERSTONE, "Range": f"bytes={total}-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{total}"


def test_image_jphc_multipart_and_single_part(archive: Archive, web: str) -> None:
    path, code = _stored_rpcl(archive, "RG1_UNCR.dcm")
    url = web + path
    multi = requests.get(url, headers={"Accept": 'multipart/related; type="image/jphc"'})
    assert multi.status_code == 200
    ((headers, data),) = _parts(multi)
    assert headers["content-type"] == f"image/jphc; transfer-syntax={RPCL}"
    assert data == code

    by_query = requests.get(url, params={"accept": "image/jphc"})
    by_header = requests.get(url, headers={"Accept": "image/jphc"})
    for single in (by_query, by_header):
        assert single.status_code == 200
        assert single.headers["content-type"] == f"image/jphc; transfer-syntax={RPCL}"
        assert single.content == code
    part = requests.get(url, params={"accept": "image/jphc"}, headers={"Range": "bytes=100-"})
    assert part.status_code == 206 and part.content == code[100:]
    assert part.headers["content-range"] == f"bytes 100-{len(code) - 1}/{len(code)}"
    stored_syntax = requests.get(
        url, headers={"Accept": f'multipart/related; type="image/jphc"; transfer-syntax={RPCL}'}
    )
    assert _parts(stored_syntax)[0][1] == code

    # The default (no transfer-syntax) octet-stream is still decoded explicit VR little endian.
    native = requests.get(
        url, headers={"Accept": 'multipart/related; type="application/octet-stream"'}
    )
    ((headers, data),) = _parts(native)
    assert (
        headers["content-type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    )
    assert data == dcmread(local("RG1_UNCR.dcm")).PixelData

    put_files(archive, "RG3_J2KR.dcm")
    j2k = dcmread(local("RG3_J2KR.dcm"), stop_before_pixels=True)
    other = (
        f"{web}/dicomweb/studies/{j2k.StudyInstanceUID}/series/{j2k.SeriesInstanceUID}"
        f"/instances/{j2k.SOPInstanceUID}/frames/1"
    )
    assert requests.get(other, headers={"Accept": "image/jphc"}).status_code == 406


def test_rendered_and_thumbnail_of_rpcl_read_a_prefix(archive: Archive, web: str) -> None:
    path, _code = _stored_rpcl(archive, "RG3_UNCR.dcm")
    rendered = requests.get(
        web + path.replace("/frames/1", "/frames/1/rendered"),
        params={"viewport": "256,256"},
        headers={"Accept": "image/png"},
    )
    assert rendered.status_code == 200, rendered.text
    assert rendered.headers["x-rendered-by"] == "htj2k-prefix"
    image = Image.open(BytesIO(rendered.content))
    assert image.size == (256, 256)
    study = path.split("/")[3]
    thumb = requests.get(f"{web}/dicomweb/studies/{study}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["x-rendered-by"] == "htj2k-prefix"


def test_cors_lets_a_viewer_send_range_and_read_content_range(
    tmp_path: Path, database_url: str
) -> None:
    from fastapi.testclient import TestClient

    from hounsfield.web.app import create_app

    origin = "https://viewer.example"
    archive = make_archive(make_settings(tmp_path, database_url, cors_origins=[origin]))
    try:
        path, code = _stored_rpcl(archive, "CT_small.dcm")
        with TestClient(create_app(archive)) as http:
            pre = http.options(
                path,
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "range, accept",
                },
            )
            assert pre.status_code == 200
            assert "range" in pre.headers["access-control-allow-headers"].lower()
            got = http.get(
                path, headers={"Origin": origin, "Accept": "image/jphc", "Range": "bytes=0-99"}
            )
            assert got.status_code == 206 and got.content == code[:100]
            exposed = {
                h.strip().lower() for h in got.headers["access-control-expose-headers"].split(",")
            }
            assert {"content-range", "content-length", "etag", "accept-ranges"} <= exposed
    finally:
        archive.close()
