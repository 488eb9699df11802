"""`hounsfield serve`: run the node's DICOM and HTTP servers."""

from __future__ import annotations

from hounsfield.cli.output import fail, settings
from hounsfield.errors import ArchiveError


def serve() -> None:
    """Start the DICOM and HTTP servers (Ctrl-C or SIGTERM stops cleanly)."""
    from hounsfield.node.bootstrap import serve as run

    try:
        run(settings())
    except ArchiveError as exc:
        fail(exc)
