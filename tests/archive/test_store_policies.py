"""Ingest refusals and policies: duplicates, malformed input, full disk, database outage."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from sqlalchemy import create_engine, func, select, text

from hounsfield.archive.context import Archive
from hounsfield.archive.store import Outcome
from hounsfield.db.tables import file, instance
from hounsfield.dimse.server import DimseServer
from hounsfield.errors import DatabaseUnavailable, DuplicateRejected, InvalidUID, StorageFull
from hounsfield.settings import Settings
from hounsfield.storage.filesystems import Filesystems
from tests.conftest import make_archive, make_settings
from tests.dcmtk import run, store_status
from tests.synth import instance as make_instance
from tests.synth import put, write_part10


def _count(archive: Archive) -> int:
    with archive.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(instance)) or 0)


def _files(archive: Archive) -> list[Path]:
    root = archive.settings.storage_dir
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("policy", ["keep", "overwrite", "reject"])
def test_duplicate_policy(tmp_path: Path, database_url: str, policy: str) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, duplicate_policy=policy))
    ds = make_instance(StudyDescription="FIRST")
    assert put(archive, ds).outcome is Outcome.STORED
    assert put(archive, ds).outcome is Outcome.DUPLICATE  # identical: nothing changes
    changed = ds.copy()
    changed.StudyDescription = "SECOND"
    if policy == "reject":
        with pytest.raises(DuplicateRejected):
            put(archive, changed)
    else:
        expected = Outcome.KEPT if policy == "keep" else Outcome.OVERWRITTEN
        assert put(archive, changed).outcome is expected
    (path,) = _files(archive)
    kept = b"SECOND" if policy == "overwrite" else b"FIRST"
    assert kept in path.read_bytes()
    assert _count(archive) == 1
    archive.close()


def test_duplicate_reject_status_over_dimse(tmp_path: Path, database_url: str) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, duplicate_policy="reject"))
    server = DimseServer(archive)
    server.start()
    try:
        ds = make_instance()
        first = write_part10(ds, tmp_path / "a.dcm")
        ds.StudyDescription = "CHANGED"
        second = write_part10(ds, tmp_path / "b.dcm")
        assert store_status(server.port, first) == 0x0000
        assert store_status(server.port, second) == 0x0111
    finally:
        server.stop(1)
        archive.close()


def _send_raw(port: int, tmp_path: Path, dataset_bytes: bytes, sop: str) -> int:
    """C-STORE arbitrary dataset bytes with pynetdicom; return the status."""
    from hounsfield.storage.filemeta import file_meta_bytes

    path = tmp_path / f"{sop}.raw"
    path.write_bytes(
        file_meta_bytes(CTImageStorage, sop, ExplicitVRLittleEndian, "X") + dataset_bytes
    )
    ae = AE(ae_title="RAWSCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="HOUNSFIELD")
    assert assoc.is_established
    status = assoc.send_c_store(path)  # sent as is: the archive's module sends files raw
    assoc.release()
    return int(status.Status)


def test_malformed_and_invalid_input_refused(
    archive: Archive, server: DimseServer, tmp_path: Path
) -> None:
    from tests.synth import encode

    sop = generate_uid()
    unknown_vr = b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100\x08\x00\x16\x00XX\x04\x00abcd"
    assert _send_raw(server.port, tmp_path, unknown_vr, sop) == 0xC000
    truncated_sequence = b"\x08\x00\x16\x00SQ\x00\x00\xff\xff\xff\xff\x01\x02"
    assert _send_raw(server.port, tmp_path, truncated_sequence, sop) == 0xC000
    cut_short = encode(make_instance(SOPInstanceUID=sop))[:200]  # inside an element
    assert _send_raw(server.port, tmp_path, cut_short, sop) == 0xC000
    missing_uids = encode(
        make_instance(SOPInstanceUID=sop, StudyInstanceUID=None, SeriesInstanceUID=None)
    )
    assert _send_raw(server.port, tmp_path, missing_uids, sop) == 0xC001
    bad_uid = encode(make_instance(SOPInstanceUID=sop, StudyInstanceUID="1.2.abc"))
    assert _send_raw(server.port, tmp_path, bad_uid, sop) == 0xC001
    no_study = encode(make_instance(SOPInstanceUID=sop, StudyInstanceUID=None))
    assert _send_raw(server.port, tmp_path, no_study, sop) == 0xC001
    mismatch = encode(make_instance(SOPInstanceUID=generate_uid()))
    assert _send_raw(server.port, tmp_path, mismatch, sop) == 0xA900
    assert _count(archive) == 0
    assert _files(archive) == []
    # The server keeps serving.
    assert run("echoscu", "-aec", "HOUNSFIELD", "127.0.0.1", str(server.port)).returncode == 0
    assert _send_raw(server.port, tmp_path, encode(make_instance(SOPInstanceUID=sop)), sop) == 0


def test_invalid_uid_never_touches_a_path(archive: Archive) -> None:
    with pytest.raises(InvalidUID):
        put(archive, make_instance(SeriesInstanceUID="../../etc"))
    assert _files(archive) == []


def test_full_disk_is_out_of_resources(tmp_path: Path, database_url: str) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, storage_capacity_bytes=2000))
    server = DimseServer(archive)
    server.start()
    try:
        first = write_part10(make_instance(), tmp_path / "a.dcm")
        second = write_part10(make_instance(), tmp_path / "b.dcm")
        assert store_status(server.port, first) == 0x0000
        assert store_status(server.port, second) == 0xA700
        assert _count(archive) == 1
        assert len(_files(archive)) == 1
        with pytest.raises(StorageFull):
            put(archive, make_instance())
    finally:
        server.stop(1)
        archive.close()


@pytest.fixture
def tiny_storage(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB filesystem (tmpfs) to fill up."""
    folder = tmp_path / "data" / "storage"
    folder.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_real_full_filesystem(tmp_path: Path, database_url: str, tiny_storage: Path) -> None:
    """The room check refuses before writing; a write the kernel refuses (ENOSPC) half-way
    leaves neither a file nor a row."""
    archive = make_archive(make_settings(tmp_path, database_url))
    big = {"Rows": 256, "Columns": 256, "PixelData": bytes(256 * 256 * 2)}  # 128 KiB
    assert put(archive, make_instance(**big)).outcome is Outcome.STORED
    with pytest.raises(StorageFull):
        put(archive, make_instance(**big))
    with mock.patch.object(Filesystems, "_has_room", return_value=True), pytest.raises(OSError):
        put(archive, make_instance(**big))
    assert _count(archive) == 1
    assert len(_files(archive)) == 1
    archive.close()


def test_database_outage_gives_out_of_resources_and_recovers(
    tmp_path: Path, postgresql_url: str
) -> None:
    """PostgreSQL becomes unreachable: stores are refused (0xA701), nothing is left on disk,
    the server keeps answering, and ingest resumes when the database is back. (The embedded
    SQLite index cannot become unreachable this way.)"""
    database_url = postgresql_url
    settings: Settings = make_settings(tmp_path, database_url)
    archive = make_archive(settings)
    server = DimseServer(archive)
    server.start()
    name = database_url.rsplit("/", 1)[1]
    admin = create_engine(
        "postgresql+psycopg://" + database_url.split("://", 1)[1].rsplit("/", 1)[0] + "/postgres",
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
        with pytest.raises(DatabaseUnavailable):
            put(archive, make_instance())
        path = write_part10(make_instance(), tmp_path / "a.dcm")
        assert store_status(server.port, path) == 0xA701
        assert run("echoscu", "-aec", "HOUNSFIELD", "127.0.0.1", str(server.port)).returncode == 0
        assert _files(archive) == []
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        assert store_status(server.port, path) == 0x0000
        assert _count(archive) == 1
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        server.stop(1)
        archive.close()


def test_file_rows_match_files(archive: Archive) -> None:
    for _ in range(3):
        put(archive, make_instance())
    with archive.engine.connect() as conn:
        paths = conn.scalars(select(file.c.path)).all()
    assert sorted(archive.settings.storage_dir.resolve() / p for p in paths) == [
        p.resolve() for p in _files(archive)
    ]
