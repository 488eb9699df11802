"""Storage Commitment Push Model SCP: answer N-ACTION, then report with N-EVENT-REPORT."""

from __future__ import annotations

import threading

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import StorageCommitmentPushModel

from hounsfield.alerts import raise_alert
from hounsfield.archive.commit import Commitment, verify
from hounsfield.archive.context import Archive
from hounsfield.dimse.nodelay import set_nodelay
from hounsfield.dimse.partition import called_partition, calling_ae
from hounsfield.sites.devices import find_device

COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # the well-known SOP instance
SUCCESS_EVENT, FAILURE_EVENT = 1, 2
SAME_ASSOCIATION_WAIT = 3.0  # seconds


def handle_action(event: Event, archive: Archive) -> tuple[int, Dataset | None]:
    """Accept a Request Storage Commitment and verify in the background."""
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
    partition = called_partition(archive, event)
    peer = calling_ae(event)
    worker = threading.Thread(
        target=_report,
        args=(archive, event, transaction, refs, partition, peer),
        name=f"commit-{transaction[-12:]}",
        daemon=True,
    )
    worker.start()
    return 0x0000, None


def event_info(transaction: str, result: Commitment) -> tuple[int, Dataset]:
    """The N-EVENT-REPORT event type and information for a verdict."""
    ds = Dataset()
    ds.TransactionUID = transaction
    ds.ReferencedSOPSequence = []
    for cuid, iuid in result.success:
        item = Dataset()
        item.ReferencedSOPClassUID = cuid
        item.ReferencedSOPInstanceUID = iuid
        ds.ReferencedSOPSequence.append(item)
    if result.failure:
        ds.FailedSOPSequence = []
        for cuid, iuid, reason in result.failure:
            item = Dataset()
            item.ReferencedSOPClassUID = cuid
            item.ReferencedSOPInstanceUID = iuid
            item.FailureReason = reason
            ds.FailedSOPSequence.append(item)
    if not ds.ReferencedSOPSequence:
        del ds.ReferencedSOPSequence
    return (FAILURE_EVENT if result.failure else SUCCESS_EVENT), ds


def _report(
    archive: Archive,
    event: Event,
    transaction: str,
    refs: list[tuple[str, str]],
    partition: str,
    peer: str,
) -> None:
    result = verify(archive, refs, partition)
    event_type, info = event_info(transaction, result)
    assoc = event.assoc
    # Sending pauses the association's reactor first, and the reactor pauses only after it
    # has sent the N-ACTION response: the report never overtakes it.
    if assoc.is_established:
        # A peer that released right after the N-ACTION response never answers here: wait
        # briefly, then report on an association of our own.
        assoc.dimse_timeout = min(SAME_ASSOCIATION_WAIT, archive.settings.dimse_timeout)
        rsp = assoc.send_n_event_report(
            info, event_type, StorageCommitmentPushModel, COMMITMENT_INSTANCE
        )
        if rsp is not None and getattr(rsp, "Status", None) is not None:
            return
    _report_new_association(archive, peer, partition, event_type, info)


def _report_new_association(
    archive: Archive, peer: str, partition: str, event_type: int, info: Dataset
) -> None:
    device = find_device(archive, peer)
    if device is None:
        _lost(archive, peer, "the requesting AE is not a known device")
        return
    ae = AE(ae_title=partition)
    ae.add_requested_context(StorageCommitmentPushModel)
    s = archive.settings
    ae.acse_timeout, ae.dimse_timeout = s.association_timeout, s.dimse_timeout
    ae.connection_timeout = s.connect_timeout
    assoc = ae.associate(
        device.host,
        device.port,
        ae_title=peer,
        ext_neg=[build_role(StorageCommitmentPushModel, scp_role=True)],
        evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)],
    )
    if not assoc.is_established:
        _lost(archive, peer, f"no association with {device.host}:{device.port}")
        return
    try:
        assoc.send_n_event_report(info, event_type, StorageCommitmentPushModel, COMMITMENT_INSTANCE)
    finally:
        assoc.release()


def _lost(archive: Archive, peer: str, why: str) -> None:
    raise_alert(
        archive.engine,
        "error",
        "commitment",
        peer,
        f"storage commitment report not delivered: {why}",
    )
