"""An extra process asks the node for the others' metric values over its link: each answer
goes to its question, and a node that is gone makes /metrics answer 503, not wrong totals."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hounsfield.errors import NodeUnavailable
from hounsfield.metrics import Snapshot, add_snapshot_source
from hounsfield.node.child_link import Answers
from hounsfield.node.children import MESSAGE_BYTES
from hounsfield.web.app import create_app
from tests.conftest import make_archive, make_settings


def _node(link: socket.socket, rows_of: dict[int, Snapshot]) -> None:
    """The node's side: answer each question, in reverse order of arrival, then close."""
    asked = [json.loads(link.recv(MESSAGE_BYTES)) for _ in range(2)]
    for question in reversed(asked):
        number = question["ask"]
        link.send(json.dumps({"answer": number, "rows": rows_of[number]}).encode())
    link.close()


def test_answers_go_to_their_questions_and_a_closed_link_fails_them() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    answers = Answers(ours)
    rows: dict[int, Snapshot] = {
        1: [("hounsfield_failures", "hounsfield_failures_total", [("operation", "a")], 1.0)],
        2: [("hounsfield_failures", "hounsfield_failures_total", [("operation", "b")], 2.0)],
    }
    node = threading.Thread(target=_node, args=(theirs, rows))
    reader = threading.Thread(target=answers.read)
    node.start()
    reader.start()
    got: list[Snapshot] = []
    askers = [threading.Thread(target=lambda: got.append(answers.others())) for _ in range(2)]
    for asker in askers:
        asker.start()
    for thread in (*askers, node, reader):
        thread.join(timeout=10)
    assert sorted(json.dumps(g) for g in got) == sorted(json.dumps(r) for r in rows.values())
    with pytest.raises(NodeUnavailable):
        answers.others()  # the node closed the link
    ours.close()


def test_metrics_answer_503_when_the_node_does_not(tmp_path: Path) -> None:
    gone = [False]

    def others() -> list[Snapshot]:
        if gone[0]:
            raise NodeUnavailable("the node's own process is gone")
        return []

    add_snapshot_source(others)
    archive = make_archive(make_settings(tmp_path, f"sqlite:///{tmp_path / 'index.db'}"))
    try:
        with TestClient(create_app(archive)) as client:
            assert client.get("/metrics").status_code == 200
            gone[0] = True
            answer = client.get("/metrics")
            assert answer.status_code == 503 and "gone" in answer.text
    finally:
        gone[0] = False
        archive.close()
