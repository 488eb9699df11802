"""The commitment-report item: verify the referenced objects and report to the requestor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hounsfield.alerts import raise_alert
from hounsfield.archive.commit import Request, report_dataset, verify
from hounsfield.dicomnet.event_report import send_commitment_report
from hounsfield.sites.devices import find_device
from hounsfield.workers.registry import register
from hounsfield.workqueue.items import Done, WorkItem
from hounsfield.workqueue.kinds import COMMITMENT_REPORT

if TYPE_CHECKING:
    from hounsfield.archive.context import Archive


@register(COMMITMENT_REPORT)
def report(archive: Archive, item: WorkItem) -> Done:
    """Verify now (the objects may have changed since the request) and send the report on a
    new association; a failure to reach the requestor is retried with back-off."""
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
    status = send_commitment_report(
        archive.settings,
        request.partition,
        request.peer,
        device.host,
        device.port,
        event_type,
        info,
    )
    return Done(
        f"reported {len(result.success)} committed, {len(result.failure)} failed "
        + (f"(status 0x{status:04X})" if status >= 0 else "(no response)")
    )
