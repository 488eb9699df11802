"""Presentation contexts that let a peer take each object in the syntax it is stored in.

A peer accepts one transfer syntax per presentation context, of its own choosing. When one
context offers several syntaxes for a SOP class, a DCMTK storescp takes its preference
(Explicit VR) and an object stored Implicit VR has to be converted to travel. So each
(SOP class, transfer syntax) pair to be sent gets a context offering that syntax alone,
and each SOP class one more offering both little endian syntaxes, for what must be
converted because the peer refused its stored syntax.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import build_context, build_role
from pynetdicom import sop_class as sop
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext

from hounsfield.errors import TooManyContexts

log = logging.getLogger(__name__)

MAX_CONTEXTS = 128  # odd context IDs 1..255
LITTLE_ENDIAN = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
# What a C-GET offers to take, per SOP class, so that objects arrive as the peer stores them.
RETRIEVE_SYNTAXES = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
)
# Proposed for objects whose SOP class a peer did not name (dcmqrscp, for one, answers an
# IMAGE-level C-FIND without SOP Class UID): the common image, report, presentation state and
# document classes.
COMMON_STORAGE = tuple(
    str(uid)
    for uid in (
        sop.CTImageStorage,
        sop.EnhancedCTImageStorage,
        sop.MRImageStorage,
        sop.EnhancedMRImageStorage,
        sop.ComputedRadiographyImageStorage,
        sop.DigitalXRayImageStorageForPresentation,
        sop.DigitalXRayImageStorageForProcessing,
        sop.DigitalMammographyXRayImageStorageForPresentation,
        sop.DigitalMammographyXRayImageStorageForProcessing,
        sop.BreastTomosynthesisImageStorage,
        sop.UltrasoundImageStorage,
        sop.UltrasoundMultiFrameImageStorage,
        sop.SecondaryCaptureImageStorage,
        sop.MultiFrameTrueColorSecondaryCaptureImageStorage,
        sop.XRayAngiographicImageStorage,
        sop.XRayRadiofluoroscopicImageStorage,
        sop.NuclearMedicineImageStorage,
        sop.PositronEmissionTomographyImageStorage,
        sop.RTImageStorage,
        sop.RTDoseStorage,
        sop.RTStructureSetStorage,
        sop.RTPlanStorage,
        sop.BasicTextSRStorage,
        sop.EnhancedSRStorage,
        sop.ComprehensiveSRStorage,
        sop.KeyObjectSelectionDocumentStorage,
        sop.GrayscaleSoftcopyPresentationStateStorage,
        sop.EncapsulatedPDFStorage,
        sop.VLPhotographicImageStorage,
    )
)
T = TypeVar("T")


def _unique(pairs: Iterable[tuple[str, str]]) -> tuple[list[str], list[tuple[str, str]]]:
    classes: dict[str, None] = {}
    exact: dict[tuple[str, str], None] = {}
    for sop_class, syntax in pairs:
        classes.setdefault(sop_class, None)
        exact.setdefault((sop_class, syntax), None)
    return list(classes), list(exact)


def contexts_needed(pairs: Iterable[tuple[str, str]]) -> int:
    """How many contexts `storage_contexts` proposes for these (SOP class, syntax) pairs."""
    classes, exact = _unique(pairs)
    return len(classes) + len(exact)


def storage_contexts(
    pairs: Iterable[tuple[str, str]], *, fit: bool = False, room: int = MAX_CONTEXTS
) -> list[PresentationContext]:
    """One context per (SOP class, transfer syntax) pair to be sent, and one little endian
    fallback per SOP class.

    More than `room` contexts raise TooManyContexts; with `fit`, the fallbacks are kept and
    the single-syntax contexts that do not fit are left out (those objects are then sent
    converted), with a warning."""
    classes, exact = _unique(pairs)
    needed = len(classes) + len(exact)
    if needed > room and not fit:
        raise TooManyContexts(
            f"{needed} presentation contexts needed ({len(classes)} SOP classes, "
            f"{len(exact)} SOP class and transfer syntax pairs); an association carries at "
            f"most {room}: send in smaller batches"
        )
    fallbacks = [build_context(c, list(LITTLE_ENDIAN)) for c in classes[:room]]
    singles = [build_context(c, [ts]) for c, ts in exact[: max(0, room - len(fallbacks))]]
    if needed > room:
        log.warning(
            "%d presentation contexts needed, %d proposed: %d SOP classes, %d of %d "
            "stored syntaxes offered as stored; the rest is sent converted",
            needed,
            room,
            len(fallbacks),
            len(singles),
            len(exact),
        )
    return singles + fallbacks


def batches(
    items: Iterable[T], pair: Callable[[T], tuple[str, str]], room: int = MAX_CONTEXTS
) -> Iterator[list[T]]:
    """The items in order, in groups whose storage contexts fit one association each."""
    group: list[T] = []
    classes: set[str] = set()
    exact: set[tuple[str, str]] = set()
    for item in items:
        key = pair(item)
        sop_class = key[0]
        grown = len(classes | {sop_class}) + len(exact | {key})
        if group and grown > room:
            yield group
            group, classes, exact = [], set(), set()
        group.append(item)
        classes.add(sop_class)
        exact.add(key)
    if group:
        yield group


def query_contexts(models: Sequence[str]) -> list[PresentationContext]:
    """A context for each query/retrieve information model, with pynetdicom's default
    uncompressed syntaxes."""
    return [build_context(model) for model in models]


def get_contexts(
    model: str, sop_classes: Sequence[str], syntaxes: Sequence[str] = LITTLE_ENDIAN
) -> tuple[list[PresentationContext], list[SCP_SCU_RoleSelectionNegotiation]]:
    """The contexts and role selections of a C-GET: the model, and each SOP class that may
    come back in each of `syntaxes` (one context each, so that the peer can send every
    object in its stored syntax when that is one of them), with us as its SCP."""
    pairs = [(c, ts) for c in sop_classes for ts in syntaxes]
    contexts = [*query_contexts([model]), *storage_contexts(pairs, room=MAX_CONTEXTS - 1)]
    return contexts, [build_role(c, scp_role=True) for c in dict.fromkeys(sop_classes)]
