"""Filesystems and tiers as the operator manages them: add, change, remove, usage."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update

from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem
from hounsfield.errors import InvalidDataset, NotFound
from hounsfield.settings import FilesystemConfig

FIELDS = (
    "tier",
    "enabled",
    "read_only",
    "write_only",
    "capacity_bytes",
    "low_watermark",
    "high_watermark",
)


@dataclass(frozen=True)
class Usage:
    """One filesystem's settings and how full it is.

    With a configured capacity, usage counts the archive's own files against it; without one,
    it is the whole disk's (total minus free), since other data takes room too."""

    pk: int
    path: str
    tier: int
    enabled: bool
    read_only: bool
    write_only: bool
    capacity_bytes: int | None
    low_watermark: int
    high_watermark: int
    stored_bytes: int
    used_bytes: int
    total_bytes: int | None

    @property
    def percent(self) -> float | None:
        """Usage in percent of the capacity, None when the path is unreachable."""
        if not self.total_bytes:
            return None
        return 100.0 * self.used_bytes / self.total_bytes

    @property
    def above_high(self) -> bool:
        """True above the high watermark."""
        return self.percent is not None and self.percent > self.high_watermark

    @property
    def bytes_to_low(self) -> int:
        """Bytes to free to come down to the low watermark (0 when already there)."""
        if not self.total_bytes:
            return 0
        return max(0, self.used_bytes - self.total_bytes * self.low_watermark // 100)


def _check(values: dict[str, Any]) -> None:
    tier = values.get("tier")
    if tier is not None and tier not in (1, 2, 3):
        raise InvalidDataset(f"tier must be 1, 2 or 3, not {tier}")
    for key in ("low_watermark", "high_watermark"):
        if key in values and not 0 <= values[key] <= 100:
            raise InvalidDataset(f"{key.replace('_', ' ')} must be a percentage")
    cap = values.get("capacity_bytes")
    if cap is not None and cap <= 0:
        raise InvalidDataset("capacity must be positive")


def _find(conn: Connection, path: str | Path) -> Any:
    text = str(Path(path).resolve())
    row = conn.execute(select(filesystem).where(filesystem.c.path == text)).mappings().first()
    if row is None:
        raise NotFound(f"no filesystem at {text}")
    return row


def add_filesystem(engine: Engine, path: Path, **values: Any) -> bool:
    """Register a filesystem (creating its folder), or update the one at `path`; True if new."""
    values = {k: v for k, v in values.items() if v is not None or k == "capacity_bytes"}
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise InvalidDataset(f"unknown filesystem settings: {', '.join(sorted(unknown))}")
    defaults = {
        "tier": 1,
        "enabled": True,
        "read_only": False,
        "write_only": False,
        "capacity_bytes": None,
        "low_watermark": 80,
        "high_watermark": 90,
    }
    merged = defaults | values
    _check(merged)
    if merged["low_watermark"] > merged["high_watermark"]:
        raise InvalidDataset("the low watermark must not exceed the high watermark")
    path.mkdir(parents=True, exist_ok=True)
    text = str(path.resolve())
    with db.write(engine) as conn:
        pk = conn.scalar(select(filesystem.c.pk).where(filesystem.c.path == text))
        if pk is None:
            conn.execute(filesystem.insert().values(path=text, **merged))
            return True
        conn.execute(update(filesystem).where(filesystem.c.pk == pk).values(**values))
        return False


def set_filesystem(engine: Engine, path: str | Path, **changes: Any) -> Usage:
    """Change some settings of the filesystem at `path`."""
    changes = {k: v for k, v in changes.items() if v is not None}
    _check(changes)
    with db.write(engine) as conn:
        row = _find(conn, path)
        low = changes.get("low_watermark", row["low_watermark"])
        if low > changes.get("high_watermark", row["high_watermark"]):
            raise InvalidDataset("the low watermark must not exceed the high watermark")
        if changes:
            conn.execute(update(filesystem).where(filesystem.c.pk == row["pk"]).values(**changes))
    return next(u for u in list_filesystems(engine) if u.pk == row["pk"])


def remove_filesystem(engine: Engine, path: str | Path) -> None:
    """Forget an empty filesystem; one that still holds files is refused."""
    with db.write(engine) as conn:
        row = _find(conn, path)
        held = conn.scalar(
            select(func.count()).select_from(file).where(file.c.filesystem_pk == row["pk"])
        )
        if held:
            raise InvalidDataset(
                f"{row['path']} still holds {held} files: migrate them or disable it instead"
            )
        conn.execute(delete(filesystem).where(filesystem.c.pk == row["pk"]))


def list_filesystems(engine: Engine) -> list[Usage]:
    """Every filesystem by tier, with its usage."""
    with db.read(engine) as conn:
        stored = dict(
            conn.execute(
                select(file.c.filesystem_pk, func.sum(file.c.size)).group_by(file.c.filesystem_pk)
            ).all()
        )
        rows = (
            conn.execute(select(filesystem).order_by(filesystem.c.tier, filesystem.c.pk))
            .mappings()
            .all()
        )
    return [_usage(row, int(stored.get(row["pk"], 0) or 0)) for row in rows]


def _usage(row: Any, stored: int) -> Usage:
    total: int | None
    if row["capacity_bytes"]:
        used, total = stored, row["capacity_bytes"]
    else:
        try:
            disk = shutil.disk_usage(row["path"])
            used, total = disk.total - disk.free, disk.total
        except OSError:
            used, total = 0, None
    return Usage(
        pk=row["pk"],
        path=row["path"],
        tier=row["tier"],
        enabled=row["enabled"],
        read_only=row["read_only"],
        write_only=row["write_only"],
        capacity_bytes=row["capacity_bytes"],
        low_watermark=row["low_watermark"],
        high_watermark=row["high_watermark"],
        stored_bytes=stored,
        used_bytes=used,
        total_bytes=total,
    )


def apply_declared(engine: Engine, declared: list[FilesystemConfig]) -> None:
    """Make the filesystems declared in the TOML file exist as declared (idempotent)."""
    for fs in declared:
        values = fs.model_dump(exclude={"path"})
        add_filesystem(engine, fs.path, **values)
