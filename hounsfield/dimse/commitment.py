"""Storage Commitment Push Model: requests as SCP, and destinations' results as SCU.

As SCP, the request becomes a `commitment-report` work item before the N-ACTION response goes out,
so the report survives the loss of this node. While the requestor's association is still
open, this node verifies at once and reports on it; the work item is then marked done.
Otherwise (the requestor released, or this node died) any node's worker verifies and reports
on an association of its own, with retries. As SCU, a destination this node forwarded to
reports on an association of its own; the result is recorded with the forward.
"""

from __future__ import annotations

import logging
import threading

from pydicom.dataset import Dataset
from pynetdicom.events import Event
from pynetdicom.sop_class import StorageCommitmentPushModel

from hounsfield.archive.commit import (
    COMMITMENT_INSTANCE,
    Request,
    report_dataset,
    report_elsewhere,
    reported,
    request_commitment,
    verify,
)
from hounsfield.archive.context import Archive
from hounsfield.dimse.partition import called_partition, calling_ae
from hounsfield.sites.commitment import record_report

log = logging.getLogger(__name__)
SAME_ASSOCIATION_WAIT = 3.0  # seconds


def handle_event_report(event: Event, archive: Archive) -> tuple[int, None]:
    """A destination's Storage Commitment result for a forward, on an association it opened."""
    return record_report(archive, int(event.event_type), event.event_information), None


def handle_action(event: Event, archive: Archive) -> tuple[int, Dataset | None]:
    """Accept a Request Storage Commitment: queue its report, then try the same association."""
    if event.action_type != 1:
        return 0x0123, None  # No such action
    info = event.action_information
    try:
        transaction = str(info.TransactionUID)
        refs = [
            (str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID))
            for i in info.ReferencedSOPSequence
        ]
    except (AttributeError, KeyError, TypeError, ValueError):
        return 0x0107, None  # Invalid argument value
    request = Request(
        transaction, refs, called_partition(archive, event).ae_title, calling_ae(event)
    )
    try:
        item_pk = request_commitment(archive, request)
    except Exception:
        log.exception("storage commitment request %s not recorded", transaction)
        return 0x0110, None  # Processing failure
    threading.Thread(
        target=_report_here,
        args=(archive, event, request, item_pk),
        name=f"commit-{transaction[-12:]}",
        daemon=True,
    ).start()
    return 0x0000, None


def _report_here(archive: Archive, event: Event, request: Request, item_pk: int) -> None:
    """Verify and report on the requestor's association while it is open; the work item is
    the fallback for everything else."""
    assoc = event.assoc
    try:
        result = verify(archive, request.refs, request.partition)
        event_type, info = report_dataset(request.transaction, result)
        # Sending pauses the association's reactor first, and the reactor pauses only after
        # it has sent the N-ACTION response: the report never overtakes it.
        if not assoc.is_established:
            report_elsewhere(archive, item_pk)
            return
        # A peer that released right after the N-ACTION response never answers here: wait
        # briefly; the work item reports on a new association.
        assoc.dimse_timeout = min(SAME_ASSOCIATION_WAIT, archive.settings.dimse_timeout)
        status, _ = assoc.send_n_event_report(
            info, event_type, StorageCommitmentPushModel, COMMITMENT_INSTANCE
        )
        if status.get("Status") == 0x0000:
            reported(archive, item_pk)
        else:  # no answer, or the requestor did not take it: on a new association
            report_elsewhere(archive, item_pk)
    except Exception:
        log.exception("storage commitment %s: reporting later", request.transaction)
