"""`hounsfield serve`: run the node's DICOM and HTTP servers."""

from __future__ import annotations

from hounsfield.cli.output import fail, settings
from hounsfield.errors import ArchiveError


def serve() -> None:
    """Start the DICOM and HTTP servers (Ctrl-C or SIGTERM stops cleanly)."""
    from hounsfield.audit.events import SYSTEM, set_actor
    from hounsfield.node.bootstrap import serve as run

    set_actor(SYSTEM)  # what the node does by itself is the system's, not the shell user's
    try:
        run(settings())
    except ArchiveError as exc:
        fail(exc)
