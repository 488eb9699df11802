"""C-FIND, C-GET and C-MOVE at the first node that answers; a request cut short by a failing
node is asked again, whole, at the next one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import sop_class as classes
from pynetdicom.presentation import PresentationContext

from hounsfield.client.failover import OnFailover, with_failover
from hounsfield.client.nodes import NodeRing
from hounsfield.client.received import Folder
from hounsfield.client.reports import RetrieveReport
from hounsfield.dicomnet.contexts import (
    LITTLE_ENDIAN,
    MAX_CONTEXTS,
    RETRIEVE_SYNTAXES,
    get_contexts,
    query_contexts,
)
from hounsfield.dicomnet.peer import Address, format_address
from hounsfield.dicomnet.responses import Progress
from hounsfield.dicomnet.scu import PeerAssociation
from hounsfield.uids import is_valid_uid

Connect = Callable[[Address, Sequence[PresentationContext], Sequence[Any]], PeerAssociation]
"""Opens an association to a node proposing the contexts (and extended negotiation)."""
OnProgress = Callable[[Progress], object]
# What a C-GET offers to take back when the SOP classes of what it asks for are not known.
COMMON_CLASSES = tuple(
    str(getattr(classes, name))
    for name in (
        "CTImageStorage",
        "EnhancedCTImageStorage",
        "MRImageStorage",
        "EnhancedMRImageStorage",
        "ComputedRadiographyImageStorage",
        "DigitalXRayImageStorageForPresentation",
        "DigitalXRayImageStorageForProcessing",
        "DigitalMammographyXRayImageStorageForPresentation",
        "DigitalMammographyXRayImageStorageForProcessing",
        "BreastTomosynthesisImageStorage",
        "UltrasoundImageStorage",
        "UltrasoundMultiFrameImageStorage",
        "SecondaryCaptureImageStorage",
        "MultiFrameGrayscaleByteSecondaryCaptureImageStorage",
        "MultiFrameGrayscaleWordSecondaryCaptureImageStorage",
        "MultiFrameTrueColorSecondaryCaptureImageStorage",
        "NuclearMedicineImageStorage",
        "PositronEmissionTomographyImageStorage",
        "EnhancedPETImageStorage",
        "XRayAngiographicImageStorage",
        "EnhancedXAImageStorage",
        "XRayRadiofluoroscopicImageStorage",
        "XRay3DAngiographicImageStorage",
        "VLPhotographicImageStorage",
        "VLEndoscopicImageStorage",
        "VLMicroscopicImageStorage",
        "VLWholeSlideMicroscopyImageStorage",
        "OphthalmicPhotography8BitImageStorage",
        "RTImageStorage",
        "RTDoseStorage",
        "RTStructureSetStorage",
        "RTPlanStorage",
        "EncapsulatedPDFStorage",
        "GrayscaleSoftcopyPresentationStateStorage",
        "BasicTextSRStorage",
        "EnhancedSRStorage",
        "ComprehensiveSRStorage",
        "KeyObjectSelectionDocumentStorage",
        "SegmentationStorage",
        "RawDataStorage",
    )
)


def find(
    ring: NodeRing, connect: Connect, query: Dataset, model: str, on_failover: OnFailover
) -> list[Dataset]:
    """Every match of a C-FIND, from the first node that answers to the end."""

    def at(node: Address) -> list[Dataset]:
        with connect(node, query_contexts([model]), ()) as link, link.find(query, model) as found:
            return list(found)

    return with_failover(ring, at, on_failover=on_failover)


def move(
    ring: NodeRing,
    connect: Connect,
    query: Dataset,
    destination: str,
    model: str,
    on_failover: OnFailover,
    on_progress: OnProgress | None = None,
) -> RetrieveReport:
    """C-MOVE to `destination` at the first node that answers to the end."""
    failovers = _Counter(on_failover)

    def at(node: Address) -> RetrieveReport:
        with connect(node, query_contexts([model]), ()) as link:
            result = link.move(query, destination, model).wait(on_progress)
        return RetrieveReport(result, format_address(node), failovers.count)

    return with_failover(ring, at, on_failover=failovers)


def get(
    ring: NodeRing,
    connect: Connect,
    query: Dataset,
    folder: Folder,
    sop_classes: Sequence[str],
    model: str,
    on_failover: OnFailover,
    on_progress: OnProgress | None = None,
) -> RetrieveReport:
    """C-GET into `folder` at the first node that answers to the end; objects of
    `sop_classes` come back in their stored syntax when it is a common one."""
    contexts, roles = get_contexts_for(model, sop_classes)
    failovers = _Counter(on_failover)

    def at(node: Address) -> RetrieveReport:
        with connect(node, contexts, roles) as link:
            result = link.get(query, folder.take, model).wait(on_progress)
        files = tuple(str(p) for p in folder.written.values())
        return RetrieveReport(result, format_address(node), failovers.count, files)

    return with_failover(ring, at, on_failover=failovers)


def get_contexts_for(model: str, sop_classes: Sequence[str]) -> tuple[list[Any], list[Any]]:
    """The C-GET contexts for these classes: the common syntaxes when they fit, else little
    endian only (as many classes as fit)."""
    wanted = list(dict.fromkeys(sop_classes)) or list(COMMON_CLASSES)
    for syntaxes in (RETRIEVE_SYNTAXES, LITTLE_ENDIAN):
        if len(wanted) * (len(syntaxes) + 1) + 1 <= MAX_CONTEXTS:
            return get_contexts(model, wanted, syntaxes)
    fit = (MAX_CONTEXTS - 1) // (len(LITTLE_ENDIAN) + 1)
    return get_contexts(model, wanted[:fit], LITTLE_ENDIAN)


def classes_in(found: Sequence[Dataset]) -> list[str]:
    """The SOP classes C-FIND answers name (SOPClassesInStudy, SOPClassUID)."""
    out: dict[str, None] = {}
    for ds in found:
        for keyword in ("SOPClassesInStudy", "SOPClassUID"):
            value = ds.get(keyword)
            values = [value] if isinstance(value, str) else list(value or [])
            for uid in values:
                if is_valid_uid(str(uid)):
                    out.setdefault(str(uid), None)
    return list(out)


class _Counter:
    """Counts failovers and passes each on."""

    def __init__(self, then: OnFailover) -> None:
        self.count, self._then = 0, then

    def __call__(self, node: Address, exc: Any) -> None:
        self.count += 1
        self._then(node, exc)
