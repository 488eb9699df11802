"""Install the archive's pynetdicom fast paths and settings, explicitly, once per process."""

from __future__ import annotations

import logging
import threading

import pydicom.config as pydicom_config
import pynetdicom
from pynetdicom import _config

from hounsfield.dicomnet import (
    admission,
    evented,
    fastrecv,
    fastsend,
    preencoded,
    rawsend,
    uidcheck,
)

SUPPORTED = "3.0."  # the internals evented, checkpoint, storesend, fastsend and fastrecv follow
_installed = threading.Lock()
_done = False


class UnsupportedPynetdicom(RuntimeError):
    """The installed pynetdicom is not the version the fast paths were written against."""


def install(*, verbose: bool = False) -> None:
    """Replace pynetdicom's polling reactors and per-message codecs with this package's, and
    set the process-wide pydicom and pynetdicom options the archive relies on (idempotent).

    Called by the node's bootstrap (and the CLI's SCU commands); importing a module of this
    package changes nothing. `verbose` keeps pynetdicom's per-message debug log handlers,
    which send through pynetdicom's own (slower) path.
    """
    global _done
    version = str(pynetdicom.__version__)
    if not version.startswith(SUPPORTED):
        raise UnsupportedPynetdicom(
            f"pynetdicom {version} is installed; the fast paths follow {SUPPORTED}x"
        )
    with _installed:
        _config.LOG_HANDLER_LEVEL = "standard" if verbose else "none"
        logging.getLogger("pynetdicom").setLevel(logging.DEBUG if verbose else logging.WARNING)
        if _done:
            return
        _config.LOG_REQUEST_IDENTIFIERS = False
        _config.LOG_RESPONSE_IDENTIFIERS = False  # formatted for a log nobody reads
        # pydicom checks every value it reads or sets against its VR with regular expressions;
        # for a server that validates what it relies on itself (UIDs) this doubled the cost of
        # each DIMSE message (pynetdicom builds every command set with pydicom).
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
        # Every storage SOP class, private and retired ones included, is accepted with the
        # first transfer syntax the requestor proposes; the C-GET requestor gets the syntax it
        # prefers for what it receives.
        _config.UNRESTRICTED_STORAGE_SERVICE = True
        evented.install()
        fastsend.install()
        fastrecv.install()
        rawsend.install()
        preencoded.install()
        uidcheck.install()
        admission.install()
        _done = True
