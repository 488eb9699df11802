"""What the HTTP side keeps in memory between requests (study metadata documents, gzip'd
metadata bodies, pixel sources) is used only while the file it came from is the same one:
a compression, a rebuild or a new instance is seen by the next request."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import requests
from dicomweb_client import DICOMwebClient
from pydicom import dcmread

from hounsfield.archive import metadata
from hounsfield.archive.context import Archive
from hounsfield.imaging.pixels import PixelSource
from hounsfield.lifecycle.compress import compress_study_uid
from hounsfield.web.dicomweb import sources
from tests.data import local
from tests.web.conftest import put_files

JSON = {"Accept": "application/dicom+json", "Accept-Encoding": "gzip"}
FRAME = {"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}


def _ids(name: str) -> tuple[str, str, str]:
    ds = dcmread(local(name), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def test_a_document_is_read_once_while_its_file_stays(archive: Archive) -> None:
    put_files(archive, "CT_small.dcm")
    study = _ids("CT_small.dcm")[0]
    first = metadata.load(archive, study)
    assert metadata.load(archive, study) is first  # not read and split again
    metadata.invalidate(archive, study_uid=study, partition=archive.default_partition)
    rebuilt = metadata.load(archive, study)
    assert rebuilt is not first and rebuilt.lines == first.lines
    metadata.rebuild(archive, study)  # another builder's file replaces it: read anew
    assert metadata.load(archive, study) is not rebuilt


def test_gzipd_metadata_is_made_once_per_root_and_follows_changes(
    archive: Archive, client: DICOMwebClient, web: str
) -> None:
    put_files(archive, "CT_small.dcm")
    study, series, _sop = _ids("CT_small.dcm")
    url = f"{web}/dicomweb/studies/{study}/series/{series}/metadata"
    one = requests.get(url, headers=JSON, stream=True)
    raw = one.raw.read()
    assert one.headers["content-encoding"] == "gzip"
    again = requests.get(url, headers=JSON, stream=True).raw.read()
    assert again == raw
    assert (series, None, f"{web}/dicomweb") in metadata.load(archive, study).memo
    other = requests.get(url, headers=JSON | {"Host": "viewer.example:8080"})
    assert "http://viewer.example:8080/dicomweb/studies/" in other.text
    assert "http://viewer.example:8080" not in gzip.decompress(raw).decode()
    plain = requests.get(url, headers=JSON | {"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.json() == json.loads(gzip.decompress(raw))

    report = compress_study_uid(archive, study, "htj2k-lossless-rpcl")
    assert report.compressed == 1, report
    (changed,) = client.retrieve_series_metadata(study, series)
    assert changed["00020010"]["Value"] == ["1.2.840.10008.1.2.4.202"]


def test_a_multi_frame_header_is_read_once_for_its_frames(
    archive: Archive, web: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_files(archive, "emri_small.dcm")  # ten native frames
    study, series, sop = _ids("emri_small.dcm")
    opened: list[object] = []
    real = sources.open_source

    def counted(path: Path) -> PixelSource:
        opened.append(path)
        return real(path)

    monkeypatch.setattr(sources, "open_source", counted)
    base = f"{web}/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames"
    bodies = [requests.get(f"{base}/{n}", headers=FRAME).content for n in range(1, 11)]
    assert len(opened) == 1
    original = dcmread(local("emri_small.dcm"))
    size = original.Rows * original.Columns * 2
    for n, body in enumerate(bodies):
        assert original.PixelData[n * size : (n + 1) * size] in body

    report = compress_study_uid(archive, study, "htj2k-lossless-rpcl")
    assert report.compressed == 1, report  # a new file: its header is read again
    replaced = requests.get(f"{base}/1", headers=FRAME)
    assert "transfer-syntax=1.2.840.10008.1.2.4.202" in replaced.headers["content-type"]
    assert len(opened) == 2
