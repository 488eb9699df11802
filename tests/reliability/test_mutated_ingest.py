"""Mutated real datasets by C-STORE and STOW-RS against a live node: proper refusals only,
the node serving throughout, nothing partial on disk or in the index."""

from __future__ import annotations

import threading
from pathlib import Path

from bench.reliability.consistency import check
from bench.reliability.mutate import DATASET_KINDS, META_KINDS, corpus, mutants
from bench.reliability.sender import Tally, Target, send_cstore, send_stow
from hounsfield.archive.context import Archive
from hounsfield.dimse.server import DimseServer
from hounsfield.web.app import create_app
from tests.live_http import live

CSTORE_MUTANTS = 200
STOW_MUTANTS = 200
SEED = 13


def test_mutated_datasets_get_proper_answers_and_leave_nothing_partial(
    archive: Archive, server: DimseServer, tmp_path: Path
) -> None:
    sources = corpus()
    assert len(sources) > 100  # pydicom's test files and pydicom-data
    with live(create_app(archive)) as url:
        port = int(url.rsplit(":", 1)[1])
        target = Target("127.0.0.1", server.port, port)
        by_dimse = mutants(sources, SEED, CSTORE_MUTANTS, DATASET_KINDS)
        by_web = mutants(sources, SEED + 1, STOW_MUTANTS, DATASET_KINDS + META_KINDS)
        tallies: dict[str, Tally] = {}
        web = threading.Thread(
            target=lambda: tallies.__setitem__("stow", send_stow(target, by_web)), daemon=True
        )
        web.start()
        tallies["cstore"] = send_cstore(target, by_dimse, tmp_path / "send", per_association=50)
        web.join(timeout=120)
        assert not web.is_alive(), "STOW-RS sender hung"
    for name, tally in tallies.items():
        expected = CSTORE_MUTANTS if name == "cstore" else STOW_MUTANTS
        assert tally.sent == expected
        assert tally.unexpected == [], (name, tally.unexpected)
        assert tally.no_answer == 0
        assert tally.probe_failures == [] and tally.probes > 0
        assert tally.accepted + sum(tally.refused.values()) == expected
        assert tally.accepted > 0 and sum(tally.refused.values()) > 0, tally
    found = check(archive.settings.sqlalchemy_url)
    assert found.problems == []
    assert found.file_rows == found.files_on_disk == found.instances > 0
