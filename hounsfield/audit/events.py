"""Audit events: their kinds, the actor behind them, and the DICOM audit codes of each kind."""

from __future__ import annotations

import contextvars
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

Kind = Literal[
    "association",  # a DIMSE association accepted
    "association-refused",  # A-ASSOCIATE-RJ, or a TLS handshake that failed
    "query",  # C-FIND, QIDO-RS
    "retrieve",  # C-GET, C-MOVE, WADO-RS / WADO-URI / rendered
    "store",  # C-STORE, STOW-RS, import, fetch
    "delete",
    "export",  # forwarding to another device
    "login",
    "logout",
    "login-failed",
    "config",  # a configuration change
    "security-alert",  # refused rights, bad credentials
    "audit-read",  # somebody read the audit trail
]
KINDS: tuple[Kind, ...] = get_args(Kind)

# RFC 3881 / PS3.15 A.5 event outcome indicator
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = 0, 4, 8, 12
OUTCOMES = {
    SUCCESS: "success",
    MINOR_FAILURE: "minor failure",
    SERIOUS_FAILURE: "serious failure",
    MAJOR_FAILURE: "major failure",
}


@dataclass(frozen=True)
class Code:
    """A coded value of the DICOM audit message (code, scheme, display name)."""

    code: str
    scheme: str
    name: str


def _dcm(code: str, name: str) -> Code:
    return Code(code, "DCM", name)


@dataclass(frozen=True)
class Coding:
    """How a kind of event is written in the DICOM audit message format (PS3.15 A.5.3)."""

    event_id: Code
    action: str  # C, R, U, D, E
    event_type: Code | None = None


CODING: dict[str, Coding] = {
    "association": Coding(_dcm("110114", "User Authentication"), "E", _dcm("110122", "Login")),
    "association-refused": Coding(
        _dcm("110113", "Security Alert"), "E", _dcm("110126", "Node Authentication")
    ),
    "query": Coding(_dcm("110112", "Query"), "E"),
    "retrieve": Coding(_dcm("110104", "DICOM Instances Transferred"), "R"),
    "store": Coding(_dcm("110104", "DICOM Instances Transferred"), "C"),
    "delete": Coding(_dcm("110105", "DICOM Study Deleted"), "D"),
    "export": Coding(_dcm("110106", "Export"), "R"),
    "login": Coding(_dcm("110114", "User Authentication"), "E", _dcm("110122", "Login")),
    "logout": Coding(_dcm("110114", "User Authentication"), "E", _dcm("110123", "Logout")),
    "login-failed": Coding(_dcm("110114", "User Authentication"), "E", _dcm("110122", "Login")),
    "config": Coding(
        _dcm("110113", "Security Alert"), "E", _dcm("110131", "Software Configuration")
    ),
    "security-alert": Coding(
        _dcm("110113", "Security Alert"), "E", _dcm("110132", "Use of Restricted Function")
    ),
    "audit-read": Coding(_dcm("110101", "Audit Log Used"), "R"),
}


@dataclass(frozen=True)
class Actor:
    """Who acts: a user (or the calling AE title), from which address, over which protocol,
    and to whom (the called AE title, or the node's own)."""

    user: str
    protocol: str  # DICOM, DICOMweb, HTTP, CLI, system
    host: str = ""
    ae_title: str = ""
    called: str = ""


SYSTEM = Actor("system", "system")
_current: contextvars.ContextVar[Actor] = contextvars.ContextVar("audit_actor", default=SYSTEM)


def current_actor() -> Actor:
    """The actor of what runs now (the node itself unless an edge said otherwise)."""
    return _current.get()


def set_actor(actor: Actor) -> None:
    """Make `actor` the actor of what follows in this thread or task."""
    _current.set(actor)


@contextmanager
def acting(actor: Actor) -> Iterator[Actor]:
    """Run a block as `actor`."""
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def command_line_actor() -> Actor:
    """The operating-system user running a command of the CLI."""
    try:
        name = getpass.getuser()
    except Exception:
        name = "unknown"
    return Actor(name, "CLI", host="localhost")


@dataclass
class AuditEvent:
    """One record of the audit trail."""

    kind: str
    actor: Actor
    outcome: int = SUCCESS
    partition: str = ""
    patient_id: str = ""
    patient_name: str = ""
    study_uid: str = ""
    count: int = 0
    detail: str = ""
    created_at: datetime | None = None
    node: str = ""
    pk: int | None = None

    def key(self) -> tuple[object, ...]:
        """What makes two events one record when they come close together."""
        return (
            self.kind,
            self.actor,
            self.outcome,
            self.partition,
            self.study_uid,
            self.patient_id,
            self.detail,
        )
