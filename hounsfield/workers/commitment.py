"""The commitment-report item: verify the referenced objects and report to the requestor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pynetdicom import build_role
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import StorageCommitmentPushModel

from hounsfield.alerts import raise_alert
from hounsfield.archive.commit import COMMITMENT_INSTANCE, Request, report_dataset, verify
from hounsfield.dicomnet.scu import associate
from hounsfield.sites.devices import find_device
from hounsfield.sites.peers import peer_of
from hounsfield.workers.registry import register
from hounsfield.workqueue.items import Done, WorkItem
from hounsfield.workqueue.kinds import COMMITMENT_REPORT

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive


@register(COMMITMENT_REPORT)
def report(archive: Archive, item: WorkItem) -> Done:
    """Verify now (the objects may have changed since the request) and send the report on a
    new association from the partition's AE title; a PeerError is retried with back-off."""
    request = Request.of(item.payload)
    device = find_device(archive, request.peer)
    if device is None:
        why = "the requesting AE is not a known device"
        raise_alert(
            archive.engine,
            "error",
            "commitment",
            request.peer,
            f"storage commitment report not delivered: {why}",
        )
        return Done(f"not delivered: {why}")
    result = verify(archive, request.refs, request.partition)
    event_type, info = report_dataset(request.transaction, result)
    with associate(
        peer_of(device),
        archive.settings,
        [build_context(StorageCommitmentPushModel)],
        ext_neg=[build_role(StorageCommitmentPushModel, scp_role=True)],
        calling_ae=request.partition,
    ) as link:
        status = link.event_report(
            info, event_type, StorageCommitmentPushModel, COMMITMENT_INSTANCE
        )
    return Done(
        f"reported {len(result.success)} committed, {len(result.failure)} failed "
        f"(status 0x{status:04X})"
    )
