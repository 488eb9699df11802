"""Requests back to back on one association: no response is taken by the reactor thread."""

from __future__ import annotations

from pydicom.dataset import Dataset

from hounsfield.archive.context import Archive
from hounsfield.dicomnet.contexts import query_contexts
from hounsfield.dicomnet.peer import Peer
from hounsfield.dicomnet.scu import FIND, associate
from hounsfield.dimse.server import DimseServer
from tests.synth import instance, put

QUERIES = 400


def test_back_to_back_finds_lose_no_response(archive: Archive, server: DimseServer) -> None:
    ds = instance()
    put(archive, ds)
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = ds.StudyInstanceUID
    query.SeriesInstanceUID = ""
    settings = archive.settings.model_copy(update={"dimse_timeout": 10.0})
    peer = Peer("HOUNSFIELD", "127.0.0.1", server.port)
    answers = []
    with associate(peer, settings, query_contexts([FIND])) as link:
        for _ in range(QUERIES):
            with link.find(query) as found:
                answers.append(len(list(found)))
    assert answers == [1] * QUERIES
