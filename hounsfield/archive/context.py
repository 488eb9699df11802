"""The archive a node serves: settings, database engine, filesystems and partitions."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from hounsfield.archive.parents import ParentCache
from hounsfield.db import engine as db
from hounsfield.db import migrate
from hounsfield.db.engine import make_engine
from hounsfield.db.tables import partition
from hounsfield.db.upsert import get_or_insert
from hounsfield.errors import NotFound
from hounsfield.settings import Settings
from hounsfield.storage.filesystems import Filesystems, ensure_filesystem


@dataclass
class Archive:
    """Everything the archive verbs need; one per process."""

    settings: Settings
    engine: Engine
    filesystems: Filesystems
    parents: ParentCache = field(default_factory=ParentCache)
    _partitions: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def default_partition(self) -> str:
        """The AE title of the partition objects go to unless told otherwise."""
        return self.settings.ae_title

    def partition_pk(self, ae_title: str) -> int:
        """The pk of the partition answering to `ae_title`."""
        with self._lock:
            pk = self._partitions.get(ae_title)
            if pk is None:
                with db.read(self.engine) as conn:
                    pk = conn.scalar(select(partition.c.pk).where(partition.c.ae_title == ae_title))
                if pk is None:
                    raise NotFound(f"no partition with AE title {ae_title!r}")
                self._partitions[ae_title] = pk
            return pk

    def partition_titles(self) -> list[str]:
        """The AE titles of every partition."""
        with db.read(self.engine) as conn:
            return list(conn.scalars(select(partition.c.ae_title).order_by(partition.c.pk)))

    def close(self) -> None:
        """Release the database pool."""
        self.engine.dispose()


def open_archive(settings: Settings, *, check_schema: bool = True) -> Archive:
    """Connect, check the schema, and make sure the default partition and filesystem exist."""
    engine = make_engine(settings.sqlalchemy_url)
    if check_schema:
        migrate.check_current(engine)
    settings.storage_dir.mkdir(parents=True, exist_ok=True)
    with db.write(engine) as conn:
        get_or_insert(conn, partition, {"ae_title": settings.ae_title}, {"description": ""})
        ensure_filesystem(conn, settings.storage_dir, settings.storage_capacity_bytes)
    return Archive(
        settings=settings,
        engine=engine,
        filesystems=Filesystems(engine, settings.storage_reserve_bytes),
    )
