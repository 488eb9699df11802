"""Service definitions: name, default interval and state, and the function that runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hounsfield.scheduled import lock

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive


@dataclass
class Run:
    """One run of a service: its archive, its saved state, and a way to save progress."""

    archive: Archive
    name: str
    node: str
    lease: timedelta
    state: dict[str, Any] = field(default_factory=dict)
    disable_after: bool = False

    def checkpoint(self) -> None:
        """Save the state now, so a run cut short resumes from here."""
        lock.save_state(self.archive.engine, self.name, self.node, self.state, self.lease)


ServiceFn = Callable[[Run], str]


@dataclass(frozen=True)
class Service:
    """A scheduled service."""

    name: str
    interval_seconds: int
    enabled: bool
    run: ServiceFn
    description: str


SERVICES: dict[str, Service] = {}


def service(
    name: str, interval_seconds: int, enabled: bool = True
) -> Callable[[ServiceFn], ServiceFn]:
    """Decorator: define a scheduled service; the function's docstring describes it."""

    def wrap(fn: ServiceFn) -> ServiceFn:
        SERVICES[name] = Service(name, interval_seconds, enabled, fn, (fn.__doc__ or "").strip())
        return fn

    return wrap
