"""Which partition an association speaks to: the called AE title, else the default."""

from __future__ import annotations

from pynetdicom.events import Event

from hounsfield.archive.context import Archive
from hounsfield.errors import NotFound


def called_partition(archive: Archive, event: Event) -> str:
    """The partition named by the association's called AE title, or the node's default."""
    called = str(event.assoc.acceptor.ae_title or "").strip()
    if called:
        try:
            archive.partition_pk(called)
            return called
        except NotFound:
            pass
    return archive.default_partition


def calling_ae(event: Event) -> str:
    """The peer's AE title."""
    return str(event.assoc.requestor.ae_title or "").strip()
