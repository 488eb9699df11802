"""Storage Commitment N-EVENT-REPORT sent on an association of our own (SCP role)."""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import StorageCommitmentPushModel

from hounsfield.dicomnet.nodelay import set_nodelay
from hounsfield.errors import ArchiveError
from hounsfield.settings import Settings

COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # the well-known SOP instance


class ReportNotDelivered(ArchiveError):
    """The requestor could not be reached, or did not acknowledge the report."""

    dimse_status = 0xA700
    http_status = 502


log = logging.getLogger(__name__)


def send_commitment_report(
    settings: Settings,
    calling_ae: str,
    peer_ae: str,
    host: str,
    port: int,
    event_type: int,
    info: Dataset,
) -> int:
    """Send one N-EVENT-REPORT to `peer_ae` at host:port; its response status (-1: none)."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(StorageCommitmentPushModel)
    ae.acse_timeout, ae.dimse_timeout = settings.association_timeout, settings.dimse_timeout
    ae.connection_timeout = settings.connect_timeout
    ae.maximum_pdu_size = settings.max_pdu
    assoc = ae.associate(
        host,
        port,
        ae_title=peer_ae,
        ext_neg=[build_role(StorageCommitmentPushModel, scp_role=True)],
        evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)],
    )
    if not assoc.is_established:
        raise ReportNotDelivered(f"no association with {peer_ae} at {host}:{port}")
    try:
        rsp = assoc.send_n_event_report(
            info, event_type, StorageCommitmentPushModel, COMMITMENT_INSTANCE
        )
    finally:
        if assoc.is_established:
            assoc.release()
    status = getattr(rsp, "Status", None)
    if status is None:
        # Sent, but no response seen within the DIMSE timeout: sending it again could only
        # repeat a report the requestor has probably processed.
        log.warning("%s sent no response to the storage commitment report", peer_ae)
        return -1
    return int(status)
