"""Fuzzing QIDO-RS parameters: an identifier or BadRequest from the parser, and 200 or 400
(never an internal error) from every search route over an archive that holds studies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from starlette.datastructures import QueryParams

from hounsfield.archive.context import Archive
from hounsfield.archive.store import store
from hounsfield.errors import ArchiveError
from hounsfield.web.app import create_app
from hounsfield.web.dicomweb.qido import identifier
from tests.reliability.fuzzing import FUZZ, FUZZ_HTTP, SOURCES

KEYS = st.one_of(
    st.sampled_from(
        [
            "PatientName",
            "PatientID",
            "StudyDate",
            "StudyTime",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "SOPInstanceUID",
            "Modality",
            "ModalitiesInStudy",
            "AccessionNumber",
            "InstanceNumber",
            "NumberOfFrames",
            "Rows",
            "ReferencedSOPSequence",
            "00100010",
            "0020000D",
            "7FE00010",
            "00091001",
            "FFFFFFFF",
            "includefield",
            "limit",
            "offset",
            "fuzzymatching",
            "PatientName.FamilyName",
        ]
    ),
    st.text(max_size=12),
)
VALUES = st.one_of(
    st.sampled_from(
        [
            *("*", "?", "", "-", "20200101-", "-20201231", "2020-2021", "1.2.3,1.2.4", "all"),
            *(str(n) for n in (-1, 2**31, 2**63, 2**64)),
        ]
    ),
    st.text(max_size=24),
    st.integers(-(2**70), 2**70).map(str),
)
PARAMS = st.lists(st.tuples(KEYS, VALUES), max_size=6)
LEVELS = st.sampled_from(["STUDY", "SERIES", "IMAGE"])


@FUZZ
@given(LEVELS, PARAMS)
def test_the_parameter_parser_gives_an_identifier_or_refuses(
    level: str, params: list[tuple[str, str]]
) -> None:
    try:
        ds, everything = identifier(level, QueryParams(params), {})  # type: ignore[arg-type]
    except ArchiveError as exc:
        assert exc.http_status == 400
        return
    assert isinstance(ds, Dataset) and isinstance(everything, bool)
    assert ds.QueryRetrieveLevel == level


@pytest.fixture
def client(archive: Archive) -> Iterator[TestClient]:
    for source in SOURCES[:6]:
        store(archive, source.transfer_syntax, source.dataset)
    with TestClient(create_app(archive)) as c:
        yield c


ROUTES = st.sampled_from(
    [
        "/dicomweb/studies",
        "/dicomweb/series",
        "/dicomweb/instances",
        f"/dicomweb/studies/{SOURCES[0].sop_instance}/series",
        "/dicomweb/studies/1.2.3/instances",
        "/dicomweb/studies/1.2.3/series/4.5.6/instances",
        "/dicomweb/studies/not-a-uid/series",
    ]
)


@FUZZ_HTTP
@given(ROUTES, PARAMS)
def test_every_search_route_answers_200_or_400(
    client: TestClient, route: str, params: list[tuple[str, str]]
) -> None:
    rsp = client.get(route, params=params)
    assert rsp.status_code in (200, 400), rsp.text
    if rsp.status_code == 200:
        assert isinstance(rsp.json(), list)


REFUSED = [
    # An offset of 2**63 reached the database and came back as an internal error.
    {"offset": str(2**63)},
    {"limit": str(2**63)},
    # pydicom's ValueError for InstanceNumber=* (an IS) was an internal error.
    {"InstanceNumber": "*"},
    {"NumberOfFrames": "1.5e999"},
]


def test_values_the_database_or_the_attribute_cannot_take_are_refused(
    client: TestClient,
) -> None:
    for params in REFUSED:
        rsp = client.get("/dicomweb/instances", params=params)
        assert rsp.status_code == 400 and rsp.json()["error"], (params, rsp.text)
