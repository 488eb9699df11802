"""C-FIND SCP (Patient and Study Root, C-CANCEL), on a partition or over a virtual one."""

from __future__ import annotations

import time
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.events import Event
from pynetdicom.sop_class import PatientRootQueryRetrieveInformationModelFind

from hounsfield.archive.context import Archive
from hounsfield.archive.query import Root, find
from hounsfield.audit.events import MINOR_FAILURE, SUCCESS
from hounsfield.audit.trail import record
from hounsfield.dimse.audit import act_as_caller, query_keys, subject
from hounsfield.dimse.partition import called_partition
from hounsfield.dimse.status import query_failure
from hounsfield.metrics import LATENCY
from hounsfield.sites.virtual import virtual_find

CANCEL, PENDING, STATUS_SUCCESS = 0xFE00, 0xFF00, 0x0000


def _implicit(event: Event) -> bool | None:
    """The VR encoding of the association's transfer syntax when it is Little Endian and not
    deflated (answers may then come already encoded); None otherwise."""
    syntax = UID(str(event.context.transfer_syntax))
    if syntax == ImplicitVRLittleEndian:
        return True
    return False if syntax == ExplicitVRLittleEndian else None


def handle_find(event: Event, archive: Archive) -> Iterator[tuple[int, Dataset | None]]:
    """Yield one Pending response per match, Cancel when asked, then Success."""
    started = time.perf_counter()
    model = str(event.request.AffectedSOPClassUID)
    root: Root = "patient" if model == PatientRootQueryRetrieveInformationModelFind else "study"
    act_as_caller(event)
    identifier, title, matches, outcome = None, "", 0, MINOR_FAILURE
    try:
        identifier = event.identifier
        part = called_partition(archive, event)
        title = part.ae_title
        results = (
            virtual_find(archive, identifier, part, root=root)
            if part.virtual
            else find(archive, identifier, partition=part, root=root, implicit=_implicit(event))
        )
        for ds in results:
            if event.is_cancelled:
                outcome = SUCCESS
                yield CANCEL, None
                return
            matches += 1
            yield PENDING, ds
        outcome = SUCCESS
    except Exception as exc:
        yield query_failure("c_find", exc), None
        return
    finally:
        patient_id, study_uid = subject(identifier)
        record(
            archive.engine,
            "query",
            outcome=outcome,
            partition=title,
            patient_id=patient_id,
            study_uid=study_uid,
            count=matches,
            detail=query_keys(identifier),
        )
    LATENCY.labels("c_find").observe(time.perf_counter() - started)
    yield STATUS_SUCCESS, None
