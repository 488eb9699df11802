"""Two nodes on one database and one data folder update one study: each node's metadata
document always matches the index, whoever built it last."""

from __future__ import annotations

import threading
from pathlib import Path

from pydicom.uid import generate_uid

from hounsfield.archive import metadata
from hounsfield.archive.context import Archive
from tests.conftest import make_archive, make_settings
from tests.synth import instance, put


def test_two_nodes_keep_one_study_document_current(tmp_path: Path, database_url: str) -> None:
    shared = tmp_path / "shared"  # the same data folder: shared storage and documents
    first = make_archive(make_settings(shared, database_url))
    second = make_archive(make_settings(shared, database_url))
    study, series = generate_uid(), generate_uid()
    try:
        for n in range(5):
            put(first, instance(StudyInstanceUID=study, SeriesInstanceUID=series, InstanceNumber=n))
        assert len(metadata.load(first, study).lines) == 5
        put(second, instance(StudyInstanceUID=study, SeriesInstanceUID=series, InstanceNumber=9))
        # The first node's cached document is stale: it is rebuilt, never served as it was.
        assert len(metadata.load(first, study).lines) == 6

        errors: list[BaseException] = []

        def store_and_read(node: Archive, base: int) -> None:
            try:
                for n in range(base, base + 10):
                    ds = instance(
                        StudyInstanceUID=study, SeriesInstanceUID=series, InstanceNumber=n
                    )
                    put(node, ds)
                    metadata.load(node, study)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=store_and_read, args=(first, 100)),
            threading.Thread(target=store_and_read, args=(second, 200)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for node in (first, second):
            document = metadata.load(node, study)
            assert len(document.lines) == 26
            assert len({sop for _series, sop in document.index}) == 26
    finally:
        first.close()
        second.close()
