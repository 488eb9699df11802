"""Filesystems the archive writes to: registration, room checks and usage."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, select

from hounsfield.alerts import raise_alert
from hounsfield.db import engine as db
from hounsfield.db.tables import filesystem
from hounsfield.errors import StorageFull
from hounsfield.storage.usage import used_bytes


@dataclass
class Filesystem:
    """One row of the filesystem table plus this node's view of its usage."""

    pk: int
    path: Path
    tier: int
    read_only: bool
    capacity_bytes: int | None
    high_watermark: int
    used_bytes: int = 0
    enabled: bool = True
    write_only: bool = False  # only receives archive copies, never new objects
    mirror_of_pk: int | None = None  # the filesystem this one mirrors (never written directly)
    mirror_mode: str | None = None  # "sync" or "async"

    @property
    def is_mirror(self) -> bool:
        """True for a mirror: it holds second copies and never takes new objects itself."""
        return self.mirror_of_pk is not None


def ensure_filesystem(conn: Connection, path: Path, capacity: int | None = None) -> int:
    """Register `path` as a tier-1 filesystem unless it is already known; return its pk."""
    text = str(path.resolve())
    pk = conn.scalar(select(filesystem.c.pk).where(filesystem.c.path == text))
    if pk is None:
        pk = conn.execute(  # type: ignore[index]
            filesystem.insert().values(
                path=text,
                tier=1,
                enabled=True,
                read_only=False,
                write_only=False,
                capacity_bytes=capacity,
                low_watermark=80,
                high_watermark=90,
            )
        ).inserted_primary_key[0]
    elif capacity is not None:
        conn.execute(
            filesystem.update().where(filesystem.c.pk == pk).values(capacity_bytes=capacity)
        )
    return int(pk)


class Filesystems:
    """This node's cached view of the filesystems, refreshed every few seconds."""

    def __init__(self, engine: Engine, reserve_bytes: int, refresh_seconds: float = 2.0) -> None:
        self._engine = engine
        self._reserve = reserve_bytes
        # Usage comes from the counters the index keeps exact (storage.usage): a few rows,
        # read again every `refresh_seconds`; this process adds its own writes meanwhile.
        self._refresh = refresh_seconds
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._alerted_at = -1e9
        self._all: dict[int, Filesystem] = {}

    def _load(self) -> None:
        with db.read(self._engine) as conn:
            used = used_bytes(conn)
            rows = conn.execute(select(filesystem)).mappings().all()
        self._all = {
            row["pk"]: Filesystem(
                pk=row["pk"],
                path=Path(row["path"]),
                tier=row["tier"],
                read_only=row["read_only"],
                capacity_bytes=row["capacity_bytes"],
                high_watermark=row["high_watermark"],
                used_bytes=used.get(row["pk"], 0),
                enabled=row["enabled"],
                write_only=row["write_only"],
                mirror_of_pk=row["mirror_of_pk"],
                mirror_mode=row["mirror_mode"],
            )
            for row in rows
        }
        self._loaded_at = time.monotonic()

    def get(self, pk: int) -> Filesystem:
        """The filesystem with primary key `pk`."""
        with self._lock:
            if pk not in self._all or time.monotonic() - self._loaded_at > self._refresh:
                self._load()
            return self._all[pk]

    def listed(self) -> list[Filesystem]:
        """Every filesystem, as recently read."""
        with self._lock:
            if time.monotonic() - self._loaded_at > self._refresh:
                self._load()
            return list(self._all.values())

    def mirror_for(self, pk: int) -> Filesystem | None:
        """The enabled, writable mirror of filesystem `pk`, if it has one."""
        with self._lock:
            if time.monotonic() - self._loaded_at > self._refresh:
                self._load()
            for fs in self._all.values():
                if fs.mirror_of_pk == pk and fs.enabled and not fs.read_only:
                    return fs
        return None

    def for_write(self, size: int) -> Filesystem:
        """A writable (neither read-only nor write-only nor a mirror) tier-1 filesystem with
        room for `size` bytes, or StorageFull."""
        with self._lock:
            if time.monotonic() - self._loaded_at > self._refresh:
                self._load()
            candidates = sorted(
                (
                    fs
                    for fs in self._all.values()
                    if fs.enabled and not fs.read_only and not fs.write_only and not fs.is_mirror
                ),
                key=lambda fs: (fs.tier, fs.pk),
            )
            for fs in candidates:
                if fs.tier == 1 and self._has_room(fs, size):
                    return fs
            alert_due = time.monotonic() - self._alerted_at > 60.0
            if alert_due:
                self._alerted_at = time.monotonic()
        message = "no writable tier-1 filesystem is below its high watermark with room"
        if alert_due:
            raise_alert(self._engine, "error", "storage", "filesystems", message)
        raise StorageFull(message)

    def _has_room(self, fs: Filesystem, size: int) -> bool:
        """Room for `size` bytes below the high watermark and above the reserve."""
        limit = fs.high_watermark / 100
        if fs.capacity_bytes is not None and fs.used_bytes + size > fs.capacity_bytes * limit:
            return False
        try:
            disk = shutil.disk_usage(fs.path)
        except OSError:
            return False
        if fs.capacity_bytes is None and disk.total - disk.free + size > disk.total * limit:
            return False
        return disk.free - size >= self._reserve

    def invalidate(self) -> None:
        """Reload the filesystems on next use (after an operator or a service changed them)."""
        with self._lock:
            self._loaded_at = 0.0

    def account(self, pk: int, delta: int) -> None:
        """Record that `delta` bytes were added to (or freed from) filesystem `pk`."""
        with self._lock:
            if pk in self._all:
                self._all[pk].used_bytes += delta
