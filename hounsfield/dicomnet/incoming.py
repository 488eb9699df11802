"""The C-STOREs a peer sends back over our own association during a C-GET."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import cast

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.dsutils import decode
from pynetdicom.events import Event

from hounsfield.errors import ArchiveError

log = logging.getLogger(__name__)
PROCESSING_FAILURE = 0x0110
NOT_SUPPORTED = 0x0122


@dataclass(frozen=True)
class Received:
    """An object as the peer sent it: the data set without File Meta, in `transfer_syntax`."""

    sop_class: str
    sop_instance: str
    transfer_syntax: str
    data: bytes

    def dataset(self) -> Dataset:
        """The decoded data set."""
        syntax = UID(self.transfer_syntax)
        found = decode(BytesIO(self.data), syntax.is_implicit_VR, syntax.is_little_endian)
        return found if found is not None else Dataset()


StoreHandler = Callable[[Received], int | None]
"""Takes one incoming C-STORE; returns its status (None: success). An ArchiveError raised
answers with its DIMSE status, any other exception with Processing Failure."""


def refuse_store(_event: Event) -> int:
    """EVT_C_STORE while no C-GET runs: SOP Class not supported."""
    return NOT_SUPPORTED


def store_handler(on_store: StoreHandler) -> Callable[[Event], int]:
    """An EVT_C_STORE handler that hands each object to `on_store`."""

    def handle(event: Event) -> int:
        request = event.request
        received = Received(
            str(request.AffectedSOPClassUID),
            str(request.AffectedSOPInstanceUID),
            str(event.context.transfer_syntax),
            cast(BytesIO, request.DataSet).getvalue(),
        )
        try:
            status = on_store(received)
        except ArchiveError as exc:
            log.warning("C-GET: %s not taken: %s", received.sop_instance, exc.message)
            return exc.dimse_status
        except Exception:
            log.exception("C-GET: %s not taken", received.sop_instance)
            return PROCESSING_FAILURE
        return 0 if status is None else int(status)

    return handle
