"""Filesystems and tiers as the operator manages them: add, change, remove, usage, mirrors."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update

from hounsfield.audit.config import config_changed, differs
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem
from hounsfield.errors import InvalidDataset, NotFound
from hounsfield.settings import FilesystemConfig
from hounsfield.storage.usage import used_bytes

FIELDS = (
    "tier",
    "enabled",
    "read_only",
    "write_only",
    "capacity_bytes",
    "low_watermark",
    "high_watermark",
    "mirror_of",  # the path of the filesystem this one mirrors
    "mirror_mode",
)
MIRROR_MODES = ("sync", "async")


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
    mirror_of_pk: int | None = None
    mirror_of: str | None = None  # the path of the filesystem this one mirrors
    mirror_mode: str | None = None  # "sync" or "async"

    @property
    def is_mirror(self) -> bool:
        """True for a mirror: it never takes new objects and holds no tier copies."""
        return self.mirror_of_pk is not None

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


def _mirror_values(
    conn: Connection, pk: int | None, path: str, mirror_of: str | Path | None, mode: str | None
) -> dict[str, Any]:
    """The mirror columns of the filesystem at `path` (`pk` None: not registered yet).

    A filesystem has at most one mirror; a mirror mirrors one filesystem, is not mirrored
    itself, takes its tier, and must be empty when it becomes one."""
    if mode is not None and mode not in MIRROR_MODES:
        raise InvalidDataset(f"mirror mode must be sync or async, not {mode!r}")
    current = None
    if pk is not None:
        current = conn.execute(select(filesystem).where(filesystem.c.pk == pk)).mappings().one()
    if mirror_of is None:
        if mode is None:
            return {}
        if current is None or current["mirror_of_pk"] is None:
            raise InvalidDataset(f"{path} is not a mirror: give the filesystem it mirrors")
        return {"mirror_mode": mode}
    other = _find(conn, mirror_of)
    if other["path"] == path:
        raise InvalidDataset("a filesystem cannot mirror itself")
    if other["mirror_of_pk"] is not None:
        raise InvalidDataset(f"{other['path']} is a mirror itself and cannot have one")
    taken = conn.scalar(
        select(filesystem.c.path).where(
            filesystem.c.mirror_of_pk == other["pk"], filesystem.c.path != path
        )
    )
    if taken:
        raise InvalidDataset(f"{other['path']} already has a mirror: {taken}")
    if current is not None:
        mirrored = conn.scalar(select(filesystem.c.path).where(filesystem.c.mirror_of_pk == pk))
        if mirrored:
            raise InvalidDataset(f"{path} has a mirror ({mirrored}) and cannot be one")
        held = conn.scalar(select(func.count()).select_from(file).where(file.c.filesystem_pk == pk))
        if current["mirror_of_pk"] != other["pk"] and held:
            raise InvalidDataset(f"{path} holds {held} files: only an empty filesystem can mirror")
    mode = mode or (current["mirror_mode"] if current is not None else None) or "sync"
    return {"mirror_of_pk": other["pk"], "mirror_mode": mode, "tier": other["tier"]}


def add_filesystem(engine: Engine, path: Path, **values: Any) -> bool:
    """Register a filesystem (creating its folder), or update the one at `path`; True if new.

    `mirror_of` (a registered filesystem's path) makes it that filesystem's mirror, in
    `mirror_mode` "sync" (default) or "async"."""
    values = {k: v for k, v in values.items() if v is not None or k == "capacity_bytes"}
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise InvalidDataset(f"unknown filesystem settings: {', '.join(sorted(unknown))}")
    mirror_of, mode = values.pop("mirror_of", None), values.pop("mirror_mode", None)
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
        row = conn.execute(select(filesystem).where(filesystem.c.path == text)).mappings().first()
        pk = None if row is None else row["pk"]
        mirror = _mirror_values(conn, pk, text, mirror_of, mode)
        if row is None:
            conn.execute(filesystem.insert().values(path=text, **(merged | mirror)))
            config_changed(engine, f"filesystem {text} added")
            return True
        if differs(row, values | mirror):
            conn.execute(
                update(filesystem).where(filesystem.c.pk == pk).values(**(values | mirror))
            )
            config_changed(engine, f"filesystem {text} changed")
        return False


def set_filesystem(engine: Engine, path: str | Path, **changes: Any) -> Usage:
    """Change some settings of the filesystem at `path` (of a mirror, also its mode)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    _check(changes)
    mode = changes.pop("mirror_mode", None)
    with db.write(engine) as conn:
        row = _find(conn, path)
        changes |= _mirror_values(conn, row["pk"], row["path"], None, mode)
        low = changes.get("low_watermark", row["low_watermark"])
        if low > changes.get("high_watermark", row["high_watermark"]):
            raise InvalidDataset("the low watermark must not exceed the high watermark")
        if changes and differs(row, changes):
            conn.execute(update(filesystem).where(filesystem.c.pk == row["pk"]).values(**changes))
            config_changed(engine, f"filesystem {row['path']} changed: {', '.join(changes)}")
    return next(u for u in list_filesystems(engine) if u.pk == row["pk"])


def remove_filesystem(engine: Engine, path: str | Path) -> None:
    """Forget an empty filesystem; one that still holds files is refused."""
    with db.write(engine) as conn:
        row = _find(conn, path)
        mirror = conn.scalar(
            select(filesystem.c.path).where(filesystem.c.mirror_of_pk == row["pk"])
        )
        if mirror:
            raise InvalidDataset(f"{row['path']} has a mirror ({mirror}): remove that first")
        held = conn.scalar(
            select(func.count()).select_from(file).where(file.c.filesystem_pk == row["pk"])
        )
        if held:
            raise InvalidDataset(
                f"{row['path']} still holds {held} files: migrate them or disable it instead"
            )
        conn.execute(delete(filesystem).where(filesystem.c.pk == row["pk"]))
    config_changed(engine, f"filesystem {row['path']} removed")


def list_filesystems(engine: Engine) -> list[Usage]:
    """Every filesystem by tier, with its usage."""
    with db.read(engine) as conn:
        stored = used_bytes(conn)
        rows = (
            conn.execute(select(filesystem).order_by(filesystem.c.tier, filesystem.c.pk))
            .mappings()
            .all()
        )
    paths = {row["pk"]: row["path"] for row in rows}
    return [_usage(row, stored.get(row["pk"], 0), paths) for row in rows]


def _usage(row: Any, stored: int, paths: dict[int, str]) -> Usage:
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
        mirror_of_pk=row["mirror_of_pk"],
        mirror_of=paths.get(row["mirror_of_pk"]),
        mirror_mode=row["mirror_mode"],
    )


def apply_declared(engine: Engine, declared: list[FilesystemConfig]) -> None:
    """Make the filesystems declared in the TOML file exist as declared (idempotent); mirrors
    after the filesystems they mirror."""
    for fs in sorted(declared, key=lambda fs: fs.mirror_of is not None):
        values = fs.model_dump(exclude={"path"})
        add_filesystem(engine, fs.path, **values)
