"""C-STORE SCP: hand the received bytes, undecoded, to the archive's ingest path."""

from __future__ import annotations

import time
from io import BytesIO
from typing import cast

from pydicom.dataset import Dataset
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event

from hounsfield.archive.context import Archive
from hounsfield.archive.store import Outcome, store
from hounsfield.dimse.audit import act_as_caller
from hounsfield.dimse.partition import called_partition, calling_ae
from hounsfield.dimse.status import status, store_failure
from hounsfield.metrics import BYTES_RECEIVED, INSTANCES_RECEIVED, LATENCY


def handle_store(event: Event, archive: Archive) -> Dataset:
    """Store one C-STORE request; success only once the object is durable and indexed."""
    started = time.perf_counter()
    request = cast(C_STORE, event.request)
    act_as_caller(event)  # the archive's store records it in the audit trail
    try:
        data = cast(BytesIO, request.DataSet).getvalue()
        result = store(
            archive,
            str(event.context.transfer_syntax),
            data,
            calling_ae=calling_ae(event),
            partition=called_partition(archive, event),
            expected_class=str(request.AffectedSOPClassUID or "") or None,
            expected_instance=str(request.AffectedSOPInstanceUID or "") or None,
        )
    except Exception as exc:
        INSTANCES_RECEIVED.labels("dimse", "failed").inc()
        return store_failure(exc)
    INSTANCES_RECEIVED.labels("dimse", result.outcome.value).inc()
    if result.outcome in (Outcome.STORED, Outcome.OVERWRITTEN):
        BYTES_RECEIVED.labels("dimse").inc(result.size)
    LATENCY.labels("c_store").observe(time.perf_counter() - started)
    return status(0x0000)
