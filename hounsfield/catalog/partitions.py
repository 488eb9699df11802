"""Partition rows: the tenants of an archive, each with its AE title, port and policies."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from hounsfield.audit.config import config_changed, differs
from hounsfield.db.tables import device, forward, partition, study
from hounsfield.errors import InvalidDataset, NotFound, PartitionNotEmpty
from hounsfield.settings import CallerPolicy, DuplicatePolicy, PartitionConfig, Settings

DUPLICATE_POLICIES = ("keep", "overwrite", "reject")
LOCAL, VIRTUAL = "local", "virtual"
KINDS = (LOCAL, VIRTUAL)
DEVICE_MEMBER = "device:"
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
    # "local", or "virtual": answers for `members` (local AE titles and "device:AE" peers,
    # in precedence order), keeps fetched objects in `cache_to`, gives each remote member
    # `member_timeout` seconds.
    kind: str = "local"
    members: tuple[str, ...] = ()
    cache_to: str | None = None
    member_timeout: float | None = None
    tls_port: int | None = None  # its own DICOM TLS port (the node's certificate)

    @property
    def virtual(self) -> bool:
        """Whether the partition answers for members instead of holding data."""
        return self.kind == "virtual"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (CLI --json, admin API)."""
        return {
            "ae_title": self.ae_title,
            "description": self.description,
            "port": self.port,
            "tls_port": self.tls_port,
            "duplicate_policy": self.duplicate_policy,
            "caller_policy": self.caller_policy,
            "accept_from": list(self.accept_from),
            "follows_node": {
                "duplicate_policy": self.own_duplicate_policy is None,
                "caller_policy": self.own_caller_policy is None,
            },
            "kind": self.kind,
            "members": list(self.members),
            "cache_to": self.cache_to,
            "member_timeout": self.member_timeout,
        }

    def accepts(self, calling_ae: str, host: str) -> bool:
        """Whether the allow-list lets `calling_ae` from `host` in (an empty list: anyone).
        An entry is `AE`, `AE@host` or `AE@network` (CIDR); `*` stands for any AE title."""
        if not self.accept_from:
            return True
        for entry in self.accept_from:
            title, _, where = entry.partition("@")
            title = title.strip()
            if (title in ("*", calling_ae)) and (not where or _from(host, where)):
                return True
        return False


def _from(host: str, where: str) -> bool:
    """Whether the caller's address `host` is `where`: an address, or inside a network."""
    try:
        address = ipaddress.ip_address(host)
        if "/" in where:
            return address in ipaddress.ip_network(where.strip("[]"), strict=False)
        return address == ipaddress.ip_address(where.strip("[]"))
    except ValueError:
        return host == where


def check_ae_title(value: str) -> str:
    """An AE title as DICOM allows it: 1 to 16 characters, no backslash."""
    value = value.strip()
    if not 0 < len(value) <= 16 or "\\" in value or any(ord(c) < 32 for c in value):
        raise InvalidDataset(f"invalid AE title {value!r}: 1 to 16 characters, no backslash")
    return value


def check_accept_from(entries: list[str]) -> list[str]:
    """Validate allow-list entries of the form `AE`, `AE@host` or `AE@network` (CIDR), where
    AE may be `*` for any AE title."""
    cleaned = [e.strip() for e in entries if e.strip()]
    for entry in cleaned:
        if not _ALLOWED.match(entry):
            raise InvalidDataset(f"invalid allow-list entry {entry!r}: AE, AE@host or AE@network")
        where = entry.partition("@")[2]
        if "/" in where:
            try:
                ipaddress.ip_network(where.strip("[]"), strict=False)
            except ValueError as exc:
                raise InvalidDataset(f"invalid network in allow-list entry {entry!r}") from exc
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
        kind=row.kind or LOCAL,
        members=tuple(json.loads(row.members or "[]")),
        cache_to=row.cache_to,
        member_timeout=row.member_timeout,
        tls_port=row.tls_port,
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
    tls_port: int | None = None,
    description: str = "",
    duplicate_policy: str | None = None,
    caller_policy: str | None = None,
    accept_from: list[str] | None = None,
    kind: str = LOCAL,
    members: list[str] | None = None,
    cache_to: str | None = None,
    member_timeout: float | None = None,
) -> int:
    """Create a partition; InvalidDataset if its AE title or port is taken or a value is off.
    A virtual partition names its members (local partitions, "device:AE" peers)."""
    ae_title = check_ae_title(ae_title)
    values = _checked(port, duplicate_policy, caller_policy, accept_from, tls_port)
    if conn.scalar(select(partition.c.pk).where(partition.c.ae_title == ae_title)) is not None:
        raise InvalidDataset(f"a partition with AE title {ae_title!r} exists")
    _check_ports_free(conn, values, None)
    values.update(_virtual(conn, ae_title, kind, members or [], cache_to, member_timeout))
    values.setdefault("accept_from", "[]")
    pk = conn.scalar(
        insert(partition)
        .values(ae_title=ae_title, description=description, **values)
        .returning(partition.c.pk)
    )
    config_changed(conn.engine, f"partition {ae_title} added")
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
        fields.get("tls_port"),
    )
    values = {k: v for k, v in values.items() if k in fields}
    for key in ("port", "tls_port", "duplicate_policy", "caller_policy"):
        if key in fields and fields[key] is None:
            values[key] = None
    if "description" in fields:
        values["description"] = fields["description"] or ""
    _check_ports_free(conn, values, pk)
    virtual_fields = ("members", "cache_to", "member_timeout")
    if any(key in fields for key in virtual_fields):
        row = conn.execute(select(partition).where(partition.c.pk == pk)).one()
        values.update(
            _virtual(
                conn,
                ae_title,
                row.kind,
                fields["members"] if "members" in fields else json.loads(row.members),
                fields.get("cache_to", row.cache_to),
                fields.get("member_timeout", row.member_timeout),
            )
        )
    before = conn.execute(select(partition).where(partition.c.pk == pk)).mappings().one()
    if values and differs(before, values):
        conn.execute(update(partition).where(partition.c.pk == pk).values(**values))
        config_changed(conn.engine, f"partition {ae_title} changed: {', '.join(sorted(values))}")


def remove(conn: Connection, ae_title: str, default_ae: str) -> None:
    """Remove an empty partition; the node's default partition stays."""
    pk = _pk(conn, ae_title)
    if ae_title == default_ae:
        raise InvalidDataset(f"{ae_title} is the node's default partition")
    studies = conn.scalar(select(func.count()).select_from(study).where(study.c.partition_pk == pk))
    if studies:
        raise PartitionNotEmpty(f"partition {ae_title} holds {studies} studies")
    for title, members, cache_to in (
        ()
        if "kind" not in partition.c
        else conn.execute(
            select(partition.c.ae_title, partition.c.members, partition.c.cache_to).where(
                partition.c.kind == VIRTUAL
            )
        )
    ):
        if ae_title in json.loads(members) or ae_title == cache_to:
            raise PartitionNotEmpty(f"virtual partition {title} uses {ae_title}")
    conn.execute(delete(forward).where(forward.c.partition_pk == pk))  # its forwards' history
    conn.execute(delete(partition).where(partition.c.pk == pk))
    config_changed(conn.engine, f"partition {ae_title} removed")


def apply_declared(conn: Connection, declared: list[PartitionConfig]) -> None:
    """Create or update the partitions the TOML file declares (others are left alone); local
    ones first, so that virtual ones can name them."""
    for cfg in sorted(declared, key=lambda c: c.kind == VIRTUAL):
        fields: dict[str, Any] = {
            "port": cfg.port,
            "tls_port": cfg.tls_port,
            "description": cfg.description,
            "duplicate_policy": cfg.duplicate_policy,
            "caller_policy": cfg.caller_policy,
            "accept_from": cfg.accept_from,
        }
        virtual: dict[str, Any] = {
            "members": cfg.members,
            "cache_to": cfg.cache_to,
            "member_timeout": cfg.member_timeout,
        }
        title = check_ae_title(cfg.ae_title)
        if conn.scalar(select(partition.c.pk).where(partition.c.ae_title == title)) is None:
            add(conn, title, kind=cfg.kind, **fields, **(virtual if cfg.kind == VIRTUAL else {}))
        else:
            change(conn, title, **fields, **(virtual if cfg.kind == VIRTUAL else {}))


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
    tls_port: int | None = None,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, number in (("port", port), ("tls_port", tls_port)):
        if number is not None:
            if not 1 <= int(number) <= 65535:
                raise InvalidDataset(f"invalid port {number}")
            values[key] = int(number)
    if port is not None and port == tls_port:
        raise InvalidDataset(f"port {port} cannot be both the plain and the TLS port")
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


def _virtual(
    conn: Connection,
    ae_title: str,
    kind: str,
    members: list[str],
    cache_to: str | None,
    member_timeout: float | None,
) -> dict[str, Any]:
    """The checked virtual-partition columns: a virtual partition has members (existing
    local partitions, or "device:AE" known devices), a local one none."""
    if kind not in KINDS:
        raise InvalidDataset(f"a partition is {' or '.join(KINDS)}, not {kind!r}")
    members = [m.strip() for m in members if m.strip()]
    if kind == LOCAL:
        if members or cache_to or member_timeout:
            raise InvalidDataset("only a virtual partition has members, a cache or a timeout")
        return {}
    if not members:
        raise InvalidDataset("a virtual partition needs at least one member")
    locals_ = {
        str(t): str(k) for t, k in conn.execute(select(partition.c.ae_title, partition.c.kind))
    }
    devices = set(conn.scalars(select(device.c.ae_title)))
    for member in members:
        if member.startswith(DEVICE_MEMBER):
            if member[len(DEVICE_MEMBER) :].strip() not in devices:
                raise InvalidDataset(f"member {member}: no such device")
        elif member == ae_title or locals_.get(member) != LOCAL:
            raise InvalidDataset(f"member {member}: not a local partition")
    if cache_to is not None and (cache_to == ae_title or locals_.get(cache_to) != LOCAL):
        raise InvalidDataset(f"cache {cache_to}: not a local partition")
    if member_timeout is not None and not 0 < member_timeout <= 3600:
        raise InvalidDataset("a member timeout is between 0 and 3600 seconds")
    return {
        "kind": VIRTUAL,
        "members": json.dumps(members),
        "cache_to": cache_to,
        "member_timeout": member_timeout,
    }


def _check_ports_free(conn: Connection, values: dict[str, Any], own_pk: int | None) -> None:
    """No other partition has the plain or TLS port given in `values` as either of its own."""
    for key in ("port", "tls_port"):
        number = values.get(key)
        if number is None:
            continue
        holder = conn.execute(
            select(partition.c.pk, partition.c.ae_title).where(
                (partition.c.port == number) | (partition.c.tls_port == number)
            )
        ).first()
        if holder is not None and holder.pk != own_pk:
            raise InvalidDataset(f"port {number} is already a port of partition {holder.ae_title}")
