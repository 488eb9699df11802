"""Fetch what is missing here from the peer (C-GET, else C-MOVE) and check it in the index."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydicom.dataset import Dataset

from hounsfield.archive.context import Archive
from hounsfield.archive.store import store
from hounsfield.catalog.partitions import Partition
from hounsfield.dicomnet.contexts import (
    LITTLE_ENDIAN,
    MAX_CONTEXTS,
    RETRIEVE_SYNTAXES,
    get_contexts,
    query_contexts,
)
from hounsfield.dicomnet.identifiers import retrieve
from hounsfield.dicomnet.incoming import Received
from hounsfield.dicomnet.responses import RetrieveResult
from hounsfield.dicomnet.scu import GET, MOVE, PeerAssociation, associate
from hounsfield.errors import ArchiveError
from hounsfield.metrics import BYTES_RECEIVED, INSTANCES_RECEIVED
from hounsfield.sites.devices import Device
from hounsfield.sites.peers import peer_of
from hounsfield.sites.reconcile_local import LocalSide
from hounsfield.sites.reconcile_model import (
    FAILED,
    FETCHED,
    IMAGE,
    SERIES,
    STUDY,
    Difference,
    Progress,
    quiet,
)
from hounsfield.sites.reconcile_peer import PeerSide

METHODS = ("auto", "get", "move")
Problems = dict[Difference, str]


def fetch(
    archive: Archive,
    part: Partition,
    device: Device,
    peer: PeerSide,
    missing: list[Difference],
    *,
    method: str = "auto",
    progress: Progress = quiet,
) -> list[Difference]:
    """Retrieve each missing study, series or instance into `part`: by C-GET where the peer
    offers it, else (and for what C-GET did not bring) by C-MOVE to the partition's AE title,
    which the peer must know. The differences with their repair: fetched (now in the index)
    or failed (and why)."""
    local = LocalSide(archive, part)
    problems: Problems = {}
    todo = list(missing)
    stages = [("get", _get), ("move", _move)]
    for name, stage in stages:
        if not todo or method not in ("auto", name):
            continue
        try:
            problems.update(stage(archive, part, device, peer, todo, progress))
        except ArchiveError as exc:
            problems.update(dict.fromkeys(todo, exc.message))
        todo = [d for d in todo if local.held(d) < max(d.instances, 1)]
    out, left = [], set(todo)
    for found in missing:
        if found in left:
            why = problems.get(found) or "not received"
            out.append(replace(found, repair=FAILED, detail=why))
        else:
            out.append(replace(found, repair=FETCHED, detail=""))
    return out


def identifier(found: Difference) -> Dataset:
    """The C-MOVE / C-GET identifier of a study, series or instance."""
    return retrieve(
        found.study,
        found.series if found.level in (SERIES, IMAGE) else None,
        found.instance if found.level == IMAGE else None,
    )


def _get(
    archive: Archive,
    part: Partition,
    device: Device,
    peer: PeerSide,
    todo: list[Difference],
    progress: Progress,
) -> Problems:
    """C-GET each item over one association; what went wrong, per item."""
    classes = sorted({c for found in todo for c in _classes(peer, found)})
    peer.close()  # idle while retrieving
    fitted = _contexts(classes)
    if fitted is None:
        return dict.fromkeys(todo, f"{len(classes)} SOP classes are too many for one C-GET")
    contexts, roles = fitted

    def on_store(received: Received) -> None:
        try:
            result = store(
                archive,
                received.transfer_syntax,
                received.data,
                partition=part,
                calling_ae=device.ae_title,
                expected_class=received.sop_class,
                expected_instance=received.sop_instance,
            )
        except Exception:
            INSTANCES_RECEIVED.labels("reconcile", "failed").inc()
            raise
        INSTANCES_RECEIVED.labels("reconcile", result.outcome.value).inc()
        BYTES_RECEIVED.labels("reconcile").inc(result.size)

    problems: Problems = {}
    link = associate(
        peer_of(device), archive.settings, contexts, ext_neg=roles, calling_ae=part.ae_title
    )
    with link:
        if not _offers(link, GET):
            return dict.fromkeys(todo, "the peer does not offer C-GET")
        for done, found in enumerate(todo):
            progress("fetching (C-GET)", done, len(todo))
            result = link.get(identifier(found), on_store).wait()
            if not result.ok:
                problems[found] = _told(result, "C-GET")
    progress("fetching (C-GET)", len(todo), len(todo))
    return problems


def _move(
    archive: Archive,
    part: Partition,
    device: Device,
    peer: PeerSide,
    todo: list[Difference],
    progress: Progress,
) -> Problems:
    """C-MOVE each item to the partition's AE title (this node's DIMSE server stores it)."""
    problems: Problems = {}
    link = associate(
        peer_of(device), archive.settings, query_contexts([MOVE]), calling_ae=part.ae_title
    )
    with link:
        for done, found in enumerate(todo):
            progress("fetching (C-MOVE)", done, len(todo))
            result = link.move(identifier(found), part.ae_title).wait()
            if not result.ok:
                problems[found] = _told(result, "C-MOVE")
    progress("fetching (C-MOVE)", len(todo), len(todo))
    return problems


def _classes(peer: PeerSide, found: Difference) -> set[str]:
    """The SOP classes of what an item names, asked of the peer when not known yet."""
    if found.level == IMAGE and found.sop_class:
        return {found.sop_class}
    if found.level == STUDY:
        study = peer.study(found.study)
        if study is not None and study.sop_classes:
            return set(study.sop_classes)
        series = [s.uid for s in peer.series(found.study)[0]]
    else:
        series = [found.series]
    return {i.sop_class for s in series for i in peer.instances(found.study, s)[0] if i.sop_class}


def _contexts(classes: list[str]) -> tuple[list[Any], list[Any]] | None:
    """The C-GET contexts for these classes: every syntax of RETRIEVE_SYNTAXES if they fit, little
    endian only if those fit; None when neither does."""
    for syntaxes in (RETRIEVE_SYNTAXES, LITTLE_ENDIAN):
        if len(classes) * (len(syntaxes) + 1) + 1 <= MAX_CONTEXTS:
            return get_contexts(GET, classes, syntaxes)
    return None


def _offers(link: PeerAssociation, model: str) -> bool:
    return any(cx.abstract_syntax == model for cx in link.assoc.accepted_contexts)


def _told(result: RetrieveResult, doing: str) -> str:
    text = (
        f"{doing} ended with status 0x{result.status:04X}: {result.completed} completed, "
        f"{result.failed} failed, {result.warning} warnings"
    )
    return f"{text} ({result.comment})" if result.comment else text
