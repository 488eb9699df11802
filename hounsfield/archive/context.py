"""The archive a node serves: settings, database engine, filesystems and partitions."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from hounsfield.audit import trail as audit
from hounsfield.catalog import partitions
from hounsfield.catalog.parents import ParentCache
from hounsfield.catalog.partitions import Partition
from hounsfield.db import engine as db
from hounsfield.db import migrate
from hounsfield.db.engine import make_engine
from hounsfield.db.tables import partition, server_rule
from hounsfield.db.upsert import get_or_insert
from hounsfield.errors import NotFound
from hounsfield.settings import Settings
from hounsfield.storage.filesystems import Filesystems, ensure_filesystem

# How long a process trusts its copy of the partition table; a change made on another node
# or process (CLI, admin API) takes effect within this time.
PARTITIONS_TTL = 2.0


@dataclass
class Archive:
    """Everything the archive verbs need; one per process."""

    settings: Settings
    engine: Engine
    filesystems: Filesystems
    parents: ParentCache = field(default_factory=ParentCache)
    _partitions: dict[str, Partition] = field(default_factory=dict)
    _loaded: float = -1e9
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _routes: tuple[float, frozenset[int | None]] = (-1e9, frozenset())

    @property
    def default_partition(self) -> str:
        """The AE title of the node's default partition."""
        return self.settings.ae_title

    def _by_title(self) -> dict[str, Partition]:
        """The partitions by AE title, as recently read from the database."""
        with self._lock:
            if time.monotonic() - self._loaded > PARTITIONS_TTL:
                with db.read(self.engine) as conn:
                    rows = partitions.load_all(conn, self.settings)
                self._partitions = {p.ae_title: p for p in rows}
                self._loaded = time.monotonic()
            return self._partitions

    def partitions(self) -> list[Partition]:
        """Every partition, as recently read from the database."""
        return list(self._by_title().values())

    def partition(self, ae_title: str | None = None) -> Partition:
        """The partition answering to `ae_title` (the default partition for None or "")."""
        title = (ae_title or "").strip() or self.default_partition
        found = self._by_title().get(title)
        if found is None:
            self.forget_partitions()  # created a moment ago, elsewhere?
            found = self._by_title().get(title)
        if found is None:
            raise NotFound(f"no partition with AE title {title!r}")
        return found

    def resolve(self, partition: Partition | str | None) -> Partition:
        """A verb's partition argument as a Partition (None: the default partition)."""
        if isinstance(partition, Partition):
            return partition
        return self.partition(partition)

    def known_partition(self, ae_title: str) -> Partition | None:
        """The partition answering to `ae_title` as last read, without reading the database
        (for the event loop); None when it was not there then."""
        return self._partitions.get(ae_title)

    def partition_pk(self, ae_title: str) -> int:
        """The pk of the partition answering to `ae_title`."""
        return self.partition(ae_title).pk

    def partition_titles(self) -> list[str]:
        """The AE titles of every partition."""
        return [p.ae_title for p in self.partitions()]

    def routes_on_receipt(self, partition_pk: int) -> bool:
        """Whether an enabled forward rule of this partition (or of all) triggers on
        receipt; re-read at most every PARTITIONS_TTL seconds."""
        loaded, pks = self._routes
        if time.monotonic() - loaded > PARTITIONS_TTL:
            with db.read(self.engine) as conn:
                rows = conn.execute(
                    select(server_rule.c.partition_pk, server_rule.c.params).where(
                        server_rule.c.action == "forward", server_rule.c.enabled.is_(True)
                    )
                ).all()
            pks = frozenset(
                pk for pk, params in rows if json.loads(params or "{}").get("trigger") == "receipt"
            )
            self._routes = (time.monotonic(), pks)
        return None in pks or partition_pk in pks

    def forget_partitions(self) -> None:
        """Read the partition table again on next use."""
        with self._lock:
            self._loaded = -1e9
            self._routes = (-1e9, frozenset())

    def close(self) -> None:
        """Write the audit trail held, and release the database pool."""
        audit.close(self.engine)
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
    audit.node_trail(engine, settings)
    return Archive(
        settings=settings,
        engine=engine,
        filesystems=Filesystems(engine, settings.storage_reserve_bytes),
    )
