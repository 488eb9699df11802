"""The measured DICOMweb operations over one keep-alive HTTP connection to 127.0.0.1."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bench.dicom_ops import Latency, Timed, latency_of

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
RETRIEVE_ACCEPT = f'multipart/related; type="{DICOM}"; transfer-syntax=*'
STUDY_UID_TAG = "0020000D"
FAILED_SOP_SEQUENCE = "00081198"


@dataclass(frozen=True)
class Rendered:
    """One rendered-image answer: wall seconds, size and how the server says it made it."""

    seconds: float
    nbytes: int
    media_type: str
    rendered_by: str
    size: tuple[int, int] | None  # (width, height) of a JPEG answer


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment, or None."""
    at = 2
    while at + 9 < len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[at + 5 : at + 7], "big")
            return int.from_bytes(data[at + 7 : at + 9], "big"), height
        at += 2 + length
    return None


def client(timeout: float) -> httpx.Client:
    """An HTTP/1.1 client keeping one connection open; proxies from the environment ignored."""
    return httpx.Client(
        timeout=timeout,
        trust_env=False,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 300:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:1000]}")
    return response


def wait_http(url: str, timeout: float) -> float:
    """Poll `url` until it answers 2xx; seconds it took."""
    started = time.perf_counter()
    last = ""
    with client(10) as http:
        while time.perf_counter() - started < timeout:
            try:
                status = http.get(url).status_code
                if status < 300:
                    return time.perf_counter() - started
                last = f"HTTP {status}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 2xx in {timeout:.0f}s ({last})")


def multipart_body(blobs: Sequence[bytes], boundary: str) -> bytes:
    """A multipart/related body with one application/dicom part per blob."""
    delimiter = f"--{boundary}\r\n".encode()
    head = f"Content-Type: {DICOM}\r\n\r\n".encode()
    out = bytearray()
    for blob in blobs:
        out += delimiter + head + blob + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def stow_content_type(boundary: str) -> str:
    """The Content-Type of a STOW-RS request."""
    return f'multipart/related; type="{DICOM}"; boundary={boundary}'


def _stow_failures(response: httpx.Response) -> list[Any]:
    try:
        body = response.json()
    except ValueError:
        return []
    return list(body.get(FAILED_SOP_SEQUENCE, {}).get("Value", [])) if body else []


def stow(http: httpx.Client, root: str, batches: Sequence[Sequence[bytes]]) -> Timed:
    """STOW-RS: one POST /studies per batch; bodies are built before the clock starts."""
    boundary = uuid.uuid4().hex
    bodies = [multipart_body(b, boundary) for b in batches]
    headers = {"Content-Type": stow_content_type(boundary), "Accept": DICOM_JSON}
    started = time.perf_counter()
    for i, body in enumerate(bodies):
        response = _check(http.post(f"{root}/studies", content=body, headers=headers), "STOW-RS")
        failed = _stow_failures(response)
        if response.status_code != 200 or failed:
            raise RuntimeError(f"STOW-RS batch {i + 1}: HTTP {response.status_code}, {failed}")
    seconds = time.perf_counter() - started
    return Timed(seconds, sum(len(b) for b in batches), sum(len(x) for b in batches for x in b))


def post_instances(http: httpx.Client, base: str, blobs: Sequence[bytes]) -> Timed:
    """Orthanc's REST upload: one POST /instances per file."""
    headers = {"Content-Type": DICOM}
    started = time.perf_counter()
    for i, blob in enumerate(blobs):
        response = _check(
            http.post(f"{base}/instances", content=blob, headers=headers), "POST /instances"
        )
        status = response.json().get("Status")
        if status != "Success":
            raise RuntimeError(f"POST /instances file {i + 1}: status {status!r}")
    seconds = time.perf_counter() - started
    return Timed(seconds, len(blobs), sum(len(b) for b in blobs))


def post_instance_id(http: httpx.Client, base: str, blob: bytes) -> str:
    """Store one file in Orthanc over REST; its Orthanc identifier."""
    response = _check(
        http.post(f"{base}/instances", content=blob, headers={"Content-Type": DICOM}),
        "POST /instances",
    )
    return str(response.json()["ID"])


def _study_uids(answer: list[dict[str, Any]]) -> list[str]:
    return [str(x.get(STUDY_UID_TAG, {}).get("Value", [""])[0]) for x in answer]


def qido_latency(
    http: httpx.Client, root: str, queries: Sequence[tuple[str, str]], runs: int
) -> Latency:
    """`runs` GET /studies?PatientID=... cycling through (patient id, expected study) pairs.

    One warm-up query first; each answer must be exactly the expected study (wrong answers are
    listed, not fatal).
    """
    headers = {"Accept": DICOM_JSON}
    _check(http.get(f"{root}/studies", params={"PatientID": queries[0][0]}, headers=headers), "")
    samples: list[float] = []
    wrong: list[str] = []
    for i in range(runs):
        patient, study = queries[i % len(queries)]
        started = time.perf_counter()
        response = http.get(f"{root}/studies", params={"PatientID": patient}, headers=headers)
        body = response.content
        samples.append(time.perf_counter() - started)
        _check(response, "QIDO-RS")
        got = _study_uids(json.loads(body))
        if got != [study]:
            wrong.append(f"query {i + 1} for {patient} answered {len(got)} studies {got}")
    return latency_of(samples, wrong)


def _boundary(content_type: str) -> bytes:
    found = re.search(r'boundary\s*=\s*"?([^";\s]+)"?', content_type, re.IGNORECASE)
    if not found:
        raise RuntimeError(f"WADO-RS answer without a multipart boundary: {content_type!r}")
    return found.group(1).encode()


def wado_retrieve(http: httpx.Client, url: str, expected: int) -> Timed:
    """GET a multipart/related WADO-RS answer, streamed to the end; parts and bytes counted."""
    started = time.perf_counter()
    with http.stream("GET", url, headers={"Accept": RETRIEVE_ACCEPT}) as response:
        if response.status_code != 200:
            response.read()
            _check(response, "WADO-RS")
        marker = b"--" + _boundary(response.headers.get("content-type", ""))
        nbytes = parts = 0
        tail = b""
        for chunk in response.iter_raw(1 << 20):
            nbytes += len(chunk)
            window = tail + chunk
            parts += window.count(marker)
            tail = window[-(len(marker) - 1) :]
    seconds = time.perf_counter() - started
    parts -= 1  # the closing delimiter
    if parts != expected:
        raise RuntimeError(f"WADO-RS {url}: {parts} parts received, {expected} expected")
    return Timed(seconds, parts, nbytes)


def metadata(http: httpx.Client, url: str, expected: int) -> tuple[float, int]:
    """GET study metadata: wall seconds and body size; the instance count is checked."""
    started = time.perf_counter()
    response = http.get(url, headers={"Accept": DICOM_JSON})
    body = response.content
    seconds = time.perf_counter() - started
    _check(response, "WADO-RS metadata")
    count = len(json.loads(body))
    if count != expected:
        raise RuntimeError(f"metadata {url}: {count} instances, {expected} expected")
    return seconds, len(body)


def rendered(http: httpx.Client, url: str) -> Rendered:
    """GET one rendered JPEG; wall seconds, size and the X-Rendered-By header if any."""
    started = time.perf_counter()
    response = http.get(url, headers={"Accept": "image/jpeg"})
    body = response.content
    seconds = time.perf_counter() - started
    _check(response, "rendered")
    media = response.headers.get("content-type", "")
    if not media.startswith("image/") or not body:
        raise RuntimeError(f"rendered {url}: {media!r}, {len(body)} bytes")
    by = response.headers.get("x-rendered-by", "")
    return Rendered(seconds, len(body), media, by, jpeg_size(body))
