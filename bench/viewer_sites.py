"""The three sites the viewer part opens: Hounsfield with .202, Hounsfield with the original
syntax, Orthanc behind a same-origin front; each holds a fresh copy of every case per run."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from bench import corpus as corpus_mod
from bench.procs import free_port
from bench.radiographs import data_folder
from bench.servers import start_orthanc, wait_ready
from bench.viewer_serverlog import ServerLog
from hounsfield.archive import metadata
from hounsfield.archive.store import store
from hounsfield.lifecycle.compress import compress_study_uid
from hounsfield.settings import Settings
from hounsfield.storage.filemeta import split_part10
from hounsfield.web.app import create_app
from tests.live_http import live
from tests.viewer.conftest import sqlite_archive

VIEWER = Path(Settings.model_fields["viewer_dir"].default)
RADIOGRAPH = "RG3_UNCR"
CASES = ("2k radiograph", "CT series (100 images)")
SITES = ("Hounsfield .202", "Hounsfield original", "Orthanc")


@dataclass
class Site:
    """A viewer origin and, per case, one study UID per run (plus one to warm up with)."""

    name: str
    url: str
    log: ServerLog
    studies: dict[str, list[str]] = field(default_factory=dict)
    warm: str = ""


def _copy(blobs: list[bytes], key: str) -> tuple[str, list[bytes]]:
    """`blobs` (one study) under new study, series and instance UIDs."""
    study, series, out = generate_uid(), generate_uid(), []
    for blob in blobs:
        ds = dcmread(BytesIO(blob))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID = key
        buf = BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return study, out


def originals(work: Path) -> dict[str, list[bytes]]:
    """Each case as Part-10 bytes, and the warm-up study (pydicom's CT_small)."""
    series = corpus_mod.generate(work / "viewer-ct", 1, 100, 100, "VIEW")
    ct = [p.read_bytes() for p in series.studies[0].files]
    rg = [(data_folder() / f"{RADIOGRAPH}.dcm").read_bytes()]
    small_path = get_testdata_file("CT_small.dcm")  # a path (str), as read=False
    if not isinstance(small_path, str):
        raise SystemExit("pydicom's CT_small.dcm test file is missing")
    small = [Path(small_path).read_bytes()]
    return {CASES[0]: rg, CASES[1]: ct, "warm": small}


def _hounsfield(
    stack: ExitStack, name: str, work: Path, data: dict[str, list[bytes]], runs: int
) -> Site:
    archive = sqlite_archive(work / name.replace(" ", "-").replace(".", ""))
    stack.callback(archive.close)
    compressed = name.endswith(".202")

    def put(blobs: list[bytes], key: str) -> str:
        study, copies = _copy(blobs, key)
        for blob in copies:
            meta, rest = split_part10(blob)
            store(archive, str(meta.TransferSyntaxUID), rest)
        if compressed:
            compress_study_uid(archive, study, "htj2k-lossless-rpcl")
        # what the node's study processing does once the study has settled (60 s after its
        # last change); the opening then finds the study's metadata document built
        metadata.rebuild(archive, study)
        return study

    log = ServerLog(create_app(archive))
    site = Site(name, stack.enter_context(live(log)), log)
    site.warm = put(data["warm"], "WARM")
    site.studies = {c: [put(data[c], f"V{n}") for n in range(runs)] for c in CASES}
    return site


def _post(orthanc: str, blob: bytes) -> None:
    request = urllib.request.Request(f"{orthanc}/instances", data=blob, method="POST")
    with urllib.request.urlopen(request, timeout=60) as answer:
        answer.read()


def _orthanc(stack: ExitStack, work: Path, data: dict[str, list[bytes]], runs: int) -> Site:
    from bench.viewer_front import front

    server = start_orthanc(work, free_port(), web=True)
    stack.callback(server.stop)
    wait_ready(server)

    def put(blobs: list[bytes], key: str) -> str:
        study, copies = _copy(blobs, key)
        for blob in copies:
            _post(server.http_base, blob)
        return study

    log = ServerLog(front(VIEWER, server.http_base))
    site = Site("Orthanc", stack.enter_context(live(log)), log)
    site.warm = put(data["warm"], "WARM")
    site.studies = {c: [put(data[c], f"V{n}") for n in range(runs)] for c in CASES}
    return site


@contextmanager
def sites(work: Path, runs: int) -> Iterator[list[Site]]:
    """The three sites, running until the block ends."""
    work.mkdir(parents=True, exist_ok=True)
    data = originals(work)
    with ExitStack() as stack:
        yield [
            _hounsfield(stack, SITES[0], work, data, runs),
            _hounsfield(stack, SITES[1], work, data, runs),
            _orthanc(stack, work, data, runs),
        ]
