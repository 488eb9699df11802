"""The log format and levels every process of a node uses."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _AboutTheData(logging.Filter):
    """pydicom's errors are about a dataset a peer sent (and the archive refused or read
    around), not errors of the archive: they are logged as warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure(level: int, verbose: bool = False) -> None:
    """Log at `level` in the node's format; pynetdicom from WARNING up unless verbose."""
    logging.basicConfig(level=level, format=FORMAT)
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if verbose else logging.WARNING)
    pydicom = logging.getLogger("pydicom")
    if not any(isinstance(f, _AboutTheData) for f in pydicom.filters):
        pydicom.addFilter(_AboutTheData())
