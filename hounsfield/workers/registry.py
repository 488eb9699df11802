"""Processors: the function that does the work of each kind, registered by kind name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from hounsfield.workqueue.items import Done, Kind, Later, WorkItem
from hounsfield.workqueue.kinds import define

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive

Processor = Callable[["Archive", WorkItem], Done | Later]
PROCESSORS: dict[str, Processor] = {}
BUILTIN = (
    "noop",
    "study",
    "storage",
    "folders",
    "compress",
    "commitment",
    "forward",
    "mirror",
    "verify",
    "reconcile",
)


def register(kind: Kind) -> Callable[[Processor], Processor]:
    """Decorator: `fn` processes items of `kind`."""

    def wrap(fn: Processor) -> Processor:
        define(kind)
        PROCESSORS[kind.name] = fn
        return fn

    return wrap


def load_builtin() -> None:
    """Import the built-in processors so they register themselves."""
    for name in BUILTIN:
        importlib.import_module(f"hounsfield.workers.{name}")


def processor_for(kind: str) -> Processor:
    """The processor of `kind`; KeyError for a kind this node does not know."""
    if not PROCESSORS:
        load_builtin()
    return PROCESSORS[kind]
