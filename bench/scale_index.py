"""Grow a PostgreSQL index for the scale part through the catalog's own row-building code."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, select, text, update

from bench.scale_data import Population, Series, Study, Template, template
from hounsfield.archive.context import Archive, open_archive
from hounsfield.catalog.index import StoredFile, index_object
from hounsfield.catalog.parse import parse_header
from hounsfield.db import engine as db
from hounsfield.db import migrate
from hounsfield.db.engine import make_engine
from hounsfield.db.tables import file, instance, patient, series, study, work_item
from hounsfield.settings import Settings
from hounsfield.storage.atomic import CHECKSUM
from hounsfield.storage.filemeta import file_meta_bytes
from hounsfield.storage.layout import object_path

SYNTAX = "1.2.840.10008.1.2.1"  # Explicit VR Little Endian
LOADERS = 2  # loader processes (each its own connection)
BATCH_INSTANCES = 2000  # instances per transaction (each file row fires the usage trigger)
_BUMP_SERIES = (
    update(series)
    .where(series.c.pk == bindparam("b_pk"))
    .values(num_instances=series.c.num_instances + bindparam("b_n"))
)
_BUMP_STUDY = (
    update(study)
    .where(study.c.pk == bindparam("b_pk"))
    .values(
        num_instances=study.c.num_instances + bindparam("b_n"),
        size_bytes=study.c.size_bytes + bindparam("b_bytes"),
    )
)


def server_base(url: str) -> str:
    """The PostgreSQL server of a URL (its database name, if any, left off)."""
    base = url.rstrip("/")
    return base.rsplit("/", 1)[0] if base.count("/") > 2 else base


def _admin(server_url: str, statements: Sequence[str]) -> None:
    import psycopg

    base = server_base(server_url)
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=10) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def fresh_database(server_url: str, name: str) -> str:
    """Drop and create database `name` on the server; its URL."""
    _admin(server_url, [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"])
    return f"{server_base(server_url)}/{name}"


def drop_database(server_url: str, name: str) -> None:
    """Drop database `name` (closing its connections)."""
    _admin(server_url, [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])


def node_settings(database_url: str, data_dir: Path) -> Settings:
    """The settings the bench process opens the index with (the node's data folder)."""
    return Settings(data_dir=data_dir, database_url=database_url, storage_reserve_bytes=0)


def open_index(database_url: str, data_dir: Path) -> Archive:
    """Create the schema, then open the archive on it (default partition and filesystem)."""
    settings = node_settings(database_url, data_dir)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return open_archive(settings)


@dataclass
class Shape:
    """How big the index is: rows per table and the database's size on disk."""

    patients: int = 0
    studies: int = 0
    series: int = 0
    instances: int = 0
    files: int = 0
    work_items: int = 0
    database_bytes: int = 0


def shape(archive: Archive) -> Shape:
    """Rows per table (counted) and pg_database_size."""
    tables = (patient, study, series, instance, file, work_item)
    with db.read(archive.engine) as conn:
        counts = [int(conn.scalar(select(func.count()).select_from(t)) or 0) for t in tables]
        size = int(conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)
    patients, studies, series_rows, instances, files, items = counts
    return Shape(patients, studies, series_rows, instances, files, items, size)


def analyze(archive: Archive) -> float:
    """ANALYZE the whole database (fresh planner statistics); seconds."""
    started = time.perf_counter()
    with archive.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return time.perf_counter() - started


@dataclass
class _Batch:
    """Rows of one transaction beyond each series' first instance, which the catalog inserts."""

    instances: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    studies: dict[int, list[int]] = field(default_factory=dict)  # study pk: [instances, bytes]


class Loader:
    """Inserts the studies of a Population into one partition and filesystem."""

    def __init__(self, archive: Archive, pop: Population) -> None:
        self.archive, self.pop = archive, pop
        part = archive.resolve(None)
        self.partition_pk, self.partition_ae = part.pk, part.ae_title
        self.filesystem_pk = archive.filesystems.for_write(0).pk

    def load(self, studies: Sequence[Study]) -> float:
        """Insert `studies`, about BATCH_INSTANCES instances per transaction; seconds."""
        started = time.perf_counter()
        for chunk in _chunks(studies):
            with db.write(self.archive.engine) as conn:
                batch = _Batch()
                for one in chunk:
                    for part in one.series:
                        self._series(conn, batch, one, part)
                self._flush(conn, batch)
        return time.perf_counter() - started

    def _stored(self, one: Study, part: Series, sop: str, data: bytes, ae: str) -> StoredFile:
        meta = file_meta_bytes(one.kind.sop_class, sop, SYNTAX, ae)
        digest = hashlib.new(CHECKSUM, meta)
        digest.update(data)
        path = object_path(self.partition_ae, one.day, one.uid, part.uid, sop)
        return StoredFile(
            self.filesystem_pk, path, SYNTAX, len(meta) + len(data), digest.hexdigest()
        )

    def _series(self, conn: Connection, batch: _Batch, one: Study, part: Series) -> None:
        """The first instance through the catalog (patient, study, series rows as the archive
        makes them), the others as rows for the batch."""
        tpl = template(self.pop, one, part)
        ae = f"{one.kind.modality}01"
        sop, data = tpl.instance(0)
        parsed = parse_header(data, SYNTAX)
        stored = self._stored(one, part, sop, data, ae)
        _, study_pk, series_pk = index_object(conn, parsed, self.partition_pk, stored, ae, None)
        end = len(parsed.header)
        self._rest(batch, one, part, tpl, (study_pk, series_pk, end), ae)

    def _rest(
        self,
        batch: _Batch,
        one: Study,
        part: Series,
        tpl: Template,
        where: tuple[int, int, int],
        ae: str,
    ) -> None:
        """Rows of the series' other instances, and its series' and study's counter bumps;
        `where` is (study pk, series pk, header length)."""
        study_pk, series_pk, end = where
        now = datetime.now(UTC)
        added = 0
        for index in range(1, part.instances):
            sop, data = tpl.instance(index)
            stored = self._stored(one, part, sop, data, ae)
            batch.instances.append(_instance_row(series_pk, sop, one, index, now, ae, data[:end]))
            batch.files.append(_file_row(stored, now))
            added += stored.size
        if part.instances > 1:
            batch.series.append({"b_pk": series_pk, "b_n": part.instances - 1})
            totals = batch.studies.setdefault(study_pk, [0, 0])
            totals[0] += part.instances - 1
            totals[1] += added

    def _flush(self, conn: Connection, batch: _Batch) -> None:
        """The batch's instance and file rows copied in, then the counters bumped."""
        if batch.instances:
            pks = reserve(conn, instance, len(batch.instances))
            for row, pk in zip(batch.instances, pks, strict=True):
                row["pk"] = pk
            for row, pk in zip(batch.files, pks, strict=True):
                row["instance_pk"] = pk
            copy_rows(conn, instance, batch.instances)
            copy_rows(conn, file, batch.files)
        if batch.series:
            conn.execute(_BUMP_SERIES, batch.series)
        if batch.studies:
            bumps = [{"b_pk": k, "b_n": n, "b_bytes": b} for k, (n, b) in batch.studies.items()]
            conn.execute(_BUMP_STUDY, bumps)


def reserve(conn: Connection, table: Table, count: int) -> list[int]:
    """`count` fresh values of the table's pk sequence, in order."""
    sequence = func.pg_get_serial_sequence(table.name, table.c.pk.name)
    stmt = select(func.nextval(sequence)).select_from(func.generate_series(1, count))
    return [int(pk) for pk in conn.scalars(stmt)]


def copy_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """COPY `rows` (dicts with the same keys) into `table`, in the transaction of `conn`."""
    from psycopg import sql

    names = list(rows[0])
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(n) for n in names)
    )
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[n] for n in names])


def _load_share(
    database_url: str, data_dir: str, sizes: tuple[int, int], share: tuple[int, int]
) -> float:
    """One loader process: the studies of the population grown from sizes[0] to sizes[1]
    instances whose patient number falls to `share` (index, of count); seconds."""
    pop = Population()
    pop.grow_to(sizes[0])
    index, count = share
    mine = [s for s in pop.grow_to(sizes[1]) if s.patient % count == index]
    archive = open_archive(node_settings(database_url, Path(data_dir)))
    try:
        return Loader(archive, pop).load(mine)
    finally:
        archive.close()


def load_parallel(
    database_url: str, data_dir: Path, sizes: tuple[int, int], processes: int = LOADERS
) -> float:
    """Grow the index from sizes[0] to sizes[1] instances with `processes` loader processes,
    each with the studies of its own patients (no two touch the same patient row); seconds."""
    started = time.perf_counter()
    context = get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = [
            pool.submit(_load_share, database_url, str(data_dir), sizes, (n, processes))
            for n in range(processes)
        ]
        for future in futures:
            future.result()
    return time.perf_counter() - started


def _instance_row(
    series_pk: int, sop: str, one: Study, index: int, now: datetime, ae: str, header: bytes
) -> dict[str, Any]:
    return {
        "series_pk": series_pk,
        "sop_iuid": sop,
        "sop_cuid": one.kind.sop_class,
        "instance_number": str(index + 1),
        "number_of_frames": None,
        "received_at": now,
        "calling_ae": ae,
        "header": header,
    }


def _file_row(stored: StoredFile, now: datetime) -> dict[str, Any]:
    return {
        "filesystem_pk": stored.filesystem_pk,
        "path": stored.path,
        "size": stored.size,
        "transfer_syntax": stored.transfer_syntax,
        "checksum": stored.checksum,
        "created_at": now,
    }


def _chunks(studies: Sequence[Study]) -> Iterator[list[Study]]:
    chunk: list[Study] = []
    count = 0
    for one in studies:
        chunk.append(one)
        count += one.instances
        if count >= BATCH_INSTANCES:
            yield chunk
            chunk, count = [], 0
    if chunk:
        yield chunk
