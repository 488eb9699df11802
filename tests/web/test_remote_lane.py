"""Requests through a virtual partition wait on its remote members in a lane of their own: a
member that never answers does not hold up the node's own requests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hounsfield.archive.context import Archive
from hounsfield.catalog import partitions
from hounsfield.db import engine as db
from hounsfield.sites.devices import Device, add_device
from hounsfield.web.app import create_app
from tests.conftest import make_archive, make_settings
from tests.live_http import live
from tests.synth import instance, put

MEMBER_TIMEOUT = 4.0


@pytest.fixture
def narrow(tmp_path: Path, database_url: str) -> Iterator[Archive]:
    """Two turns for the node's own reads, one for reads through virtual partitions."""
    settings = make_settings(tmp_path, database_url, http_threads=2, http_remote_threads=1)
    archive = make_archive(settings)
    yield archive
    archive.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A member that accepts connections and never says a word."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        yield silent.getsockname()[1]


def test_a_silent_member_holds_up_only_its_own_lane(narrow: Archive, silent_port: int) -> None:
    add_device(narrow, Device("SILENT", "127.0.0.1", silent_port))
    with db.write(narrow.engine) as conn:
        partitions.add(
            conn, "ALL", kind="virtual", members=["device:SILENT"], member_timeout=MEMBER_TIMEOUT
        )
    narrow.forget_partitions()
    put(narrow, instance())
    assert narrow.partition("ALL").virtual  # the node knows it before the requests come
    done: dict[str, float] = {}

    def ask(name: str, path: str) -> None:
        answer = httpx.get(base + path, timeout=60)
        assert answer.status_code == 200, answer.text
        done[name] = time.monotonic()

    with live(create_app(narrow)) as base:
        through = [
            threading.Thread(target=ask, args=(f"virtual {n}", "/dicomweb/aets/ALL/studies"))
            for n in range(3)
        ]
        for t in through:
            t.start()
        time.sleep(0.5)  # every turn there is for them is taken, two more wait
        ask("local", "/dicomweb/studies")
        for t in through:
            t.join()
    first_virtual = min(v for k, v in done.items() if k.startswith("virtual"))
    assert done["local"] < first_virtual  # answered while the member was still silent
