"""Partition rows: the tenants of an archive, each with its AE title, port and policies."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from hounsfield.db.tables import partition, study
from hounsfield.errors import InvalidDataset, NotFound, PartitionNotEmpty
from hounsfield.settings import CallerPolicy, DuplicatePolicy, PartitionConfig, Settings

DUPLICATE_POLICIES = ("keep", "overwrite", "reject")
CALLER_POLICIES = ("any", "known")
_ALLOWED = re.compile(r"^[^\\@]{1,16}(@[A-Za-z0-9.:\-\[\]/]+)?$")


@dataclass(frozen=True)
class Partition:
    """One partition as every verb sees it, its policies resolved against the node's."""

    pk: int
    ae_title: str
    description: str
    port: int | None
    duplicate_policy: DuplicatePolicy
    caller_policy: CallerPolicy
    accept_from: tuple[str, ...]
    # As stored: None where the partition follows the node's setting.
    own_duplicate_policy: str | None = None
    own_caller_policy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (CLI --json, admin API)."""
        return {
            "ae_title": self.ae_title,
            "description": self.description,
            "port": self.port,
            "duplicate_policy": self.duplicate_policy,
            "caller_policy": self.caller_policy,
            "accept_from": list(self.accept_from),
            "follows_node": {
                "duplicate_policy": self.own_duplicate_policy is None,
                "caller_policy": self.own_caller_policy is None,
            },
        }

    def accepts(self, calling_ae: str, host: str) -> bool:
        """Whether the allow-list lets `calling_ae` from `host` in (an empty list: anyone)."""
        if not self.accept_from:
            return True
        for entry in self.accept_from:
            title, _, where = entry.partition("@")
            if title.strip() == calling_ae and (not where or where == host):
                return True
        return False


def check_ae_title(value: str) -> str:
    """An AE title as DICOM allows it: 1 to 16 characters, no backslash."""
    value = value.strip()
    if not 0 < len(value) <= 16 or "\\" in value or any(ord(c) < 32 for c in value):
        raise InvalidDataset(f"invalid AE title {value!r}: 1 to 16 characters, no backslash")
    return value


def check_accept_from(entries: list[str]) -> list[str]:
    """Validate allow-list entries of the form `AE` or `AE@host`."""
    cleaned = [e.strip() for e in entries if e.strip()]
    for entry in cleaned:
        if not _ALLOWED.match(entry):
            raise InvalidDataset(f"invalid allow-list entry {entry!r}: AE or AE@host")
    return cleaned


def from_row(row: Any, settings: Settings) -> Partition:
    """A Partition from a partition row, policies defaulting to the node's settings."""
    return Partition(
        pk=int(row.pk),
        ae_title=row.ae_title,
        description=row.description or "",
        port=row.port,
        duplicate_policy=row.duplicate_policy or settings.duplicate_policy,
        caller_policy=row.caller_policy or settings.caller_policy,
        accept_from=tuple(json.loads(row.accept_from or "[]")),
        own_duplicate_policy=row.duplicate_policy,
        own_caller_policy=row.caller_policy,
    )


def load_all(conn: Connection, settings: Settings) -> list[Partition]:
    """Every partition, in creation order."""
    rows = conn.execute(select(partition).order_by(partition.c.pk)).all()
    return [from_row(r, settings) for r in rows]


def add(
    conn: Connection,
    ae_title: str,
    *,
    port: int | None = None,
    description: str = "",
    duplicate_policy: str | None = None,
    caller_policy: str | None = None,
    accept_from: list[str] | None = None,
) -> int:
    """Create a partition; InvalidDataset if its AE title or port is taken or a value is off."""
    ae_title = check_ae_title(ae_title)
    values = _checked(port, duplicate_policy, caller_policy, accept_from)
    if conn.scalar(select(partition.c.pk).where(partition.c.ae_title == ae_title)) is not None:
        raise InvalidDataset(f"a partition with AE title {ae_title!r} exists")
    _check_port_free(conn, port, None)
    values.setdefault("accept_from", "[]")
    pk = conn.scalar(
        insert(partition)
        .values(ae_title=ae_title, description=description, **values)
        .returning(partition.c.pk)
    )
    return int(pk)  # type: ignore[arg-type]


def change(conn: Connection, ae_title: str, **fields: Any) -> None:
    """Change some of a partition's settings; a value of None for a policy means "follow the
    node"; fields not given are left as they are."""
    pk = _pk(conn, ae_title)
    values = _checked(
        fields.get("port"),
        fields.get("duplicate_policy"),
        fields.get("caller_policy"),
        fields.get("accept_from"),
    )
    values = {k: v for k, v in values.items() if k in fields}
    for key in ("port", "duplicate_policy", "caller_policy"):
        if key in fields and fields[key] is None:
            values[key] = None
    if "description" in fields:
        values["description"] = fields["description"] or ""
    if "port" in values:
        _check_port_free(conn, values["port"], pk)
    if values:
        conn.execute(update(partition).where(partition.c.pk == pk).values(**values))


def remove(conn: Connection, ae_title: str, default_ae: str) -> None:
    """Remove an empty partition; the node's default partition stays."""
    pk = _pk(conn, ae_title)
    if ae_title == default_ae:
        raise InvalidDataset(f"{ae_title} is the node's default partition")
    studies = conn.scalar(select(func.count()).select_from(study).where(study.c.partition_pk == pk))
    if studies:
        raise PartitionNotEmpty(f"partition {ae_title} holds {studies} studies")
    conn.execute(delete(partition).where(partition.c.pk == pk))


def apply_declared(conn: Connection, declared: list[PartitionConfig]) -> None:
    """Create or update the partitions the TOML file declares (others are left alone)."""
    for cfg in declared:
        fields: dict[str, Any] = {
            "port": cfg.port,
            "description": cfg.description,
            "duplicate_policy": cfg.duplicate_policy,
            "caller_policy": cfg.caller_policy,
            "accept_from": cfg.accept_from,
        }
        title = check_ae_title(cfg.ae_title)
        if conn.scalar(select(partition.c.pk).where(partition.c.ae_title == title)) is None:
            add(conn, title, **fields)
        else:
            change(conn, title, **fields)


def _pk(conn: Connection, ae_title: str) -> int:
    pk = conn.scalar(select(partition.c.pk).where(partition.c.ae_title == ae_title.strip()))
    if pk is None:
        raise NotFound(f"no partition with AE title {ae_title!r}")
    return int(pk)


def _checked(
    port: int | None,
    duplicate_policy: str | None,
    caller_policy: str | None,
    accept_from: list[str] | None,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if port is not None:
        if not 1 <= int(port) <= 65535:
            raise InvalidDataset(f"invalid port {port}")
        values["port"] = int(port)
    if duplicate_policy is not None:
        if duplicate_policy not in DUPLICATE_POLICIES:
            raise InvalidDataset(f"duplicate policy must be one of {', '.join(DUPLICATE_POLICIES)}")
        values["duplicate_policy"] = duplicate_policy
    if caller_policy is not None:
        if caller_policy not in CALLER_POLICIES:
            raise InvalidDataset(f"caller policy must be one of {', '.join(CALLER_POLICIES)}")
        values["caller_policy"] = caller_policy
    if accept_from is not None:
        values["accept_from"] = json.dumps(check_accept_from(list(accept_from)))
    return values


def _check_port_free(conn: Connection, port: int | None, own_pk: int | None) -> None:
    if port is None:
        return
    holder = conn.execute(
        select(partition.c.pk, partition.c.ae_title).where(partition.c.port == port)
    ).first()
    if holder is not None and holder.pk != own_pk:
        raise InvalidDataset(f"port {port} is already the port of partition {holder.ae_title}")
