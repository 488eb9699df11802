"""What each role may do, and which partitions a caller may reach."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Role = Literal["admin", "operator", "radiologist", "api"]
ROLES: tuple[Role, ...] = ("admin", "operator", "radiologist", "api")
Permission = Literal[
    "dicomweb.read",
    "dicomweb.store",
    "dicomweb.delete",
    "viewer",
    "ui.read",
    "ui.write",
    "admin.read",
    "admin.write",
    "users",
    "audit",
]
ALL_PARTITIONS = "*"

_EVERYTHING: frozenset[str] = frozenset(get_args(Permission))
_GRANTS: dict[str, frozenset[str]] = {
    "admin": _EVERYTHING,
    "operator": _EVERYTHING - {"users", "audit"},
    "radiologist": frozenset({"dicomweb.read", "viewer", "ui.read"}),
    "api": frozenset({"dicomweb.read", "dicomweb.store"}),
}


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a name, a role, the partitions they may reach (None: all)."""

    name: str
    role: str
    partitions: frozenset[str] | None = None
    via: str = "local"  # loopback, session, token, oidc

    def may(self, permission: Permission) -> bool:
        """Whether the role grants `permission`."""
        return permission in _GRANTS.get(self.role, frozenset())

    def reaches(self, partition: str | None) -> bool:
        """Whether `partition` (None: a view over every partition) is open to this caller."""
        if self.partitions is None:
            return True
        return partition is not None and partition in self.partitions


LOOPBACK = Principal("loopback", "admin", None, via="loopback")


def parse_partitions(value: str | list[str] | None) -> frozenset[str] | None:
    """A stored or claimed partition list ("*" or a list of AE titles) as a set; None: all."""
    if value is None or value == ALL_PARTITIONS:
        return None
    if isinstance(value, str):
        return frozenset({value})
    if ALL_PARTITIONS in value:
        return None
    return frozenset(str(v).strip() for v in value)
