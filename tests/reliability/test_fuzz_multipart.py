"""Fuzzing STOW-RS multipart parsing: the reader gives parts or MalformedMultipart, the route
answers a defined status, whatever the framing, the chunking and the Content-Type."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from hounsfield.archive.context import Archive
from hounsfield.web.app import create_app
from hounsfield.web.dicomweb import multipart
from hounsfield.web.dicomweb.multipart import MalformedMultipart, Part, ReceivedPart
from tests.reliability.fuzzing import FUZZ, FUZZ_HTTP, SOURCES, mutated

BOUNDARY = "f0e1d2c3b4a5"
DELIMITER = b"\r\n--" + BOUNDARY.encode()
bodies = st.binary(max_size=300).filter(lambda b: DELIMITER not in b"\r\n" + b + b"\r\n")
headers = st.dictionaries(
    st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).map(str.strip),
    max_size=3,
)


def _read(body: bytes, cuts: list[int], boundary: str = BOUNDARY) -> list[ReceivedPart]:
    """The parts multipart.read gives for `body` arriving in pieces cut at `cuts`."""

    async def stream() -> AsyncIterator[bytes]:
        start = 0
        for cut in [*sorted(c % (len(body) + 1) for c in cuts), len(body)]:
            if cut >= start:
                yield body[start:cut]
                start = cut

    async def collect() -> list[ReceivedPart]:
        return [part async for part in multipart.read(stream(), boundary)]

    return asyncio.run(collect())


@FUZZ
@given(st.lists(st.tuples(headers, bodies), min_size=1, max_size=4), st.lists(st.integers(0)))
def test_what_the_writer_frames_the_reader_reads_back_in_any_chunking(
    parts: list[tuple[dict[str, str], bytes]], cuts: list[int]
) -> None:
    body = b"".join(multipart.write((Part(h, [b]) for h, b in parts), BOUNDARY))
    got = _read(body, cuts)
    assert [p.body for p in got] == [b for _, b in parts]
    assert [p.headers for p in got] == [{k.lower(): v for k, v in h.items()} for h, _ in parts]


def _framed(parts: list[bytes]) -> bytes:
    return b"".join(
        b"--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n" % (BOUNDARY.encode(), p)
        for p in parts
    ) + (b"--%s--\r\n" % BOUNDARY.encode())


FRAMED = _framed([b"first part", b"second\r\n--not-the-boundary\r\n", b""])


@FUZZ
@given(st.one_of(mutated(FRAMED), st.binary(max_size=400)), st.lists(st.integers(0)))
def test_the_reader_gives_parts_or_refuses_a_damaged_body(body: bytes, cuts: list[int]) -> None:
    try:
        got = _read(body, cuts)
    except MalformedMultipart:
        return
    assert all(isinstance(p.body, bytes) and isinstance(p.headers, dict) for p in got)


@FUZZ
@given(st.text(max_size=120))
def test_content_type_parameters_are_read_or_refused(value: str) -> None:
    try:
        media, boundary = multipart.boundary_of(value)
    except MalformedMultipart:
        return
    assert boundary and media == media.strip().lower()
    assert isinstance(multipart.type_of(value), str)


@pytest.fixture
def client(archive: Archive) -> Iterator[TestClient]:
    with TestClient(create_app(archive)) as c:
        yield c


CONTENT_TYPES = st.one_of(
    st.just(f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'),
    st.builds(
        "multipart/related; type={}; boundary={}".format,
        st.sampled_from(['"application/dicom"', "application/dicom+json", '""', "x"]),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
)
STOW_BODY = _framed([SOURCES[0].meta + SOURCES[0].dataset, b"not DICOM"])
DEFINED = {200, 202, 400, 409, 415}


@FUZZ_HTTP
@given(CONTENT_TYPES, st.one_of(mutated(STOW_BODY), st.binary(max_size=200)))
def test_stow_answers_a_defined_status_for_any_body_and_content_type(
    client: TestClient, content_type: str, body: bytes
) -> None:
    rsp = client.post(
        "/dicomweb/studies",
        content=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
    )
    assert rsp.status_code in DEFINED, rsp.text
    if rsp.status_code in (200, 202, 409):
        answer = rsp.json()
        failed = answer.get("00081198", {}).get("Value", [])
        assert all(item["00081197"]["Value"][0] != 0x0110 for item in failed), answer
