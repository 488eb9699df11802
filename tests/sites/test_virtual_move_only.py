"""A virtual partition whose remote member offers no C-GET (DCMTK's dcmqrscp with
`--disable-get`, which also answers IMAGE-level queries without SOP Class UID): what it holds
is fetched by C-MOVE into the cache partition and handed on, over C-GET, C-MOVE and WADO-RS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, MRImageStorage, generate_uid

from hounsfield.archive.context import Archive
from hounsfield.archive.query import locate
from hounsfield.catalog import partitions
from hounsfield.db import engine as db
from hounsfield.dicomnet.operations import get, move
from hounsfield.dicomnet.peer import Peer
from hounsfield.dimse.server import DimseServer
from hounsfield.errors import ServiceNotOffered
from hounsfield.sites.devices import Device, add_device
from tests.dcmtk import QueryRetrieveSCP, StoreSCP
from tests.synth import instance, write_part10


@dataclass
class MoveOnly:
    """HQ with a cache partition and a virtual ALL over the dcmqrscp member CLINIC."""

    archive: Archive
    server: DimseServer
    clinic: QueryRetrieveSCP
    study: str
    sops: dict[str, str]  # SOP Instance UID: SOP Class UID

    def virtual(self) -> Peer:
        return Peer("ALL", "127.0.0.1", self.server.port)

    def study_query(self) -> Dataset:
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = self.study
        return q

    def cached(self) -> set[str]:
        return {o.sop_instance for o in locate(self.archive, self.study_query(), partition="CACHE")}


def _files(folder: Path, study: str) -> dict[Path, Dataset]:
    """Two CT images in one series and an MR image in another, as Part-10 files."""
    folder.mkdir(parents=True)
    series = [generate_uid(), generate_uid()]
    made = [
        instance(StudyInstanceUID=study, SeriesInstanceUID=series[0], InstanceNumber=1),
        instance(StudyInstanceUID=study, SeriesInstanceUID=series[0], InstanceNumber=2),
        instance(
            StudyInstanceUID=study,
            SeriesInstanceUID=series[1],
            SOPClassUID=MRImageStorage,
            Modality="MR",
        ),
    ]
    out = {}
    for n, ds in enumerate(made):
        path = folder / f"{n}.dcm"
        write_part10(ds, path)
        out[path] = ds
    return out


def _virtual(archive: Archive, cache_to: str | None) -> None:
    with db.write(archive.engine) as conn:
        partitions.add(
            conn,
            "ALL",
            kind="virtual",
            members=["device:CLINIC"],
            cache_to=cache_to,
            member_timeout=10.0,
        )
    archive.forget_partitions()


def _setup(archive: Archive, tmp_path: Path, cache_to: str | None) -> MoveOnly:
    study = generate_uid()
    files = _files(tmp_path / "clinic-files", study)
    with db.write(archive.engine) as conn:
        partitions.add(conn, "CACHE")
    server = DimseServer(archive)
    server.start()
    clinic = QueryRetrieveSCP(tmp_path / "clinic", list(files), {"CACHE": server.port}, "CLINIC")
    add_device(archive, Device("CLINIC", "127.0.0.1", clinic.port))
    _virtual(archive, cache_to)
    sops = {str(ds.SOPInstanceUID): str(ds.SOPClassUID) for ds in files.values()}
    return MoveOnly(archive, server, clinic, study, sops)


@pytest.fixture
def move_only(archive: Archive, tmp_path: Path) -> Iterator[MoveOnly]:
    made = _setup(archive, tmp_path, "CACHE")
    yield made
    made.server.stop(1)
    made.clinic.stop()


def test_get_through_the_virtual_partition_fetches_by_c_move(move_only: MoveOnly) -> None:
    got: dict[str, str] = {}

    def on_store(received: object) -> None:
        got[received.sop_instance] = received.sop_class  # type: ignore[attr-defined]

    result = get(
        move_only.virtual(),
        move_only.archive.settings,
        move_only.study_query(),
        on_store,
        [CTImageStorage, MRImageStorage],
    )
    assert (result.status, result.completed, result.failed) == (0x0000, 3, 0)
    assert got == move_only.sops  # each object with its own SOP class
    assert move_only.cached() == set(move_only.sops)  # moved into the cache partition


def test_move_through_the_virtual_partition_sends_what_the_member_moved(
    move_only: MoveOnly, tmp_path: Path
) -> None:
    scp = StoreSCP(tmp_path / "viewer", "VIEWER")
    add_device(move_only.archive, Device("VIEWER", "127.0.0.1", scp.port))
    try:
        result = move(
            move_only.virtual(), move_only.archive.settings, move_only.study_query(), "VIEWER"
        )
    finally:
        scp.stop()
    assert (result.status, result.completed, result.failed) == (0x0000, 3, 0)
    # the member named no SOP class: the sub-association offered the common ones
    received = {
        str(dcmread(p).SOPInstanceUID): str(dcmread(p).SOPClassUID) for p in scp.folder.iterdir()
    }
    assert received == move_only.sops


def test_without_a_cache_partition_what_c_get_cannot_fetch_fails(
    archive: Archive, tmp_path: Path
) -> None:
    setup = _setup(archive, tmp_path, None)
    try:
        result = get(
            setup.virtual(),
            archive.settings,
            setup.study_query(),
            lambda _received: None,
            [CTImageStorage, MRImageStorage],
        )
    finally:
        setup.server.stop(1)
        setup.clinic.stop()
    assert (result.completed, result.failed) == (0, 3)
    assert setup.cached() == set()


def test_a_service_the_peer_did_not_accept_is_said_so(archive: Archive, tmp_path: Path) -> None:
    clinic = QueryRetrieveSCP(tmp_path / "clinic", [], {}, "CLINIC")
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = generate_uid()
    try:
        with pytest.raises(ServiceNotOffered, match="does not offer C-GET"):
            get(
                Peer("CLINIC", "127.0.0.1", clinic.port),
                archive.settings,
                query,
                print,
                [CTImageStorage],
            )
    finally:
        clinic.stop()
