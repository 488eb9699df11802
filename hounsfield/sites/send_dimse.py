"""Forward stored objects by C-STORE: links reused across studies, as stored where the peer
takes it, in order, under the destination's rate cap; then request storage commitment."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

from pydicom.dataset import Dataset
from pynetdicom.presentation import PresentationContext, build_context

from hounsfield.archive.context import Archive
from hounsfield.archive.query import Located
from hounsfield.dicomnet.contexts import MAX_CONTEXTS, batches, storage_contexts
from hounsfield.dicomnet.operations import SUCCESSFUL
from hounsfield.dicomnet.scu import COMMITMENT, PeerAssociation, associate
from hounsfield.errors import ArchiveError, PeerError
from hounsfield.imaging.transcode import to_little_endian
from hounsfield.sites.devices import Device
from hounsfield.sites.links import POOL, RateCap
from hounsfield.sites.peers import peer_of

log = logging.getLogger(__name__)
Acked = Callable[[list[tuple[str, str]]], None]
"""Told the (SOP Class, SOP Instance) pairs the peer just acknowledged."""
ReportHandler = Callable[[int, Dataset], int]


class Refused(PeerError):
    """The peer answered some C-STOREs with a failure status."""


def send(
    archive: Archive,
    device: Device,
    calling: str,
    objects: Sequence[Located],
    on_acked: Acked,
    *,
    cap: RateCap | None = None,
    links: int = 1,
    on_report: ReportHandler | None = None,
) -> None:
    """C-STORE `objects` on up to `links` associations at once (each takes every `links`-th
    object, in order); every acknowledged one goes to `on_acked` right away. Refusals are
    counted and raised as `Refused` at the end; a PeerError (the link failed) at once."""
    if not objects:
        return
    refused: list[str] = []
    if links <= 1 or len(objects) < 2 * links:
        _send_on_one(archive, device, calling, list(objects), on_acked, cap, refused, on_report)
    else:
        _send_in_parallel(archive, device, calling, objects, on_acked, cap, refused, links)
    if refused:
        raise Refused(
            f"{device.ae_title} refused {len(refused)} of {len(objects)} objects: "
            + "; ".join(refused[:3])
        )


def _send_in_parallel(
    archive: Archive,
    device: Device,
    calling: str,
    objects: Sequence[Located],
    on_acked: Acked,
    cap: RateCap | None,
    refused: list[str],
    links: int,
) -> None:
    errors: list[BaseException] = []

    def run(share: list[Located]) -> None:
        try:
            _send_on_one(archive, device, calling, share, on_acked, cap, refused, None)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(list(objects[n::links]),), name=f"fwd-{n}")
        for n in range(links)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def contexts_for(objects: Sequence[Located], commitment: bool) -> list[PresentationContext]:
    """The contexts a link for `objects` proposes (and Storage Commitment when asked)."""
    room = MAX_CONTEXTS - (1 if commitment else 0)
    out = storage_contexts(((o.sop_class, o.transfer_syntax) for o in objects), room=room)
    return [*out, build_context(COMMITMENT)] if commitment else out


def _send_on_one(
    archive: Archive,
    device: Device,
    calling: str,
    objects: list[Located],
    on_acked: Acked,
    cap: RateCap | None,
    refused: list[str],
    on_report: ReportHandler | None,
) -> None:
    room = MAX_CONTEXTS - (1 if device.commitment else 0)
    for group in batches(objects, lambda o: (o.sop_class, o.transfer_syntax), room=room):
        link = _link(archive, device, calling, group)
        if on_report is not None:
            link.on_event_report(on_report)
        try:
            for obj, following in zip(group, [*group[1:], None], strict=True):
                if cap is not None:
                    cap.spend(obj.size)
                try:
                    status = link.store(
                        _readable(obj), convert=to_little_endian, following=following
                    )
                except PeerError:
                    raise
                except ArchiveError as exc:
                    refused.append(f"{obj.sop_instance}: {exc.message}")
                    continue
                except (OSError, ValueError, RuntimeError) as exc:  # unreadable, undecodable
                    refused.append(f"{obj.sop_instance}: {type(exc).__name__}: {exc}")
                    continue
                if status in SUCCESSFUL:
                    on_acked([(obj.sop_class, obj.sop_instance)])
                else:
                    refused.append(f"{obj.sop_instance}: status 0x{status:04X}")
        except BaseException:
            link.abort()
            raise
        POOL.give(device.ae_title, calling, link, archive.settings.forward_linger_seconds)


def _readable(obj: Located) -> Located:
    """`obj`, read from the mirror's copy when its primary file is gone (no look without one)."""
    if not obj.fallbacks:
        return obj
    path = obj.readable()
    return obj if path == obj.path else replace(obj, path=path)


def _link(archive: Archive, device: Device, calling: str, group: list[Located]) -> PeerAssociation:
    needs = [(o.sop_class, o.transfer_syntax) for o in group]
    if device.commitment:
        needs.append((COMMITMENT, ""))
    link = POOL.take(device.ae_title, calling, needs)
    if link is not None:
        return link
    return associate(
        peer_of(device),
        archive.settings,
        contexts_for(group, device.commitment),
        calling_ae=calling,
    )


def request_commitment(
    archive: Archive,
    device: Device,
    calling: str,
    transaction: str,
    refs: Sequence[tuple[str, str]],
    on_report: ReportHandler,
    wait: float,
) -> bool:
    """Ask the device to commit `refs` under `transaction` (on a pooled link or a new one)
    and wait up to `wait` seconds for the report on that association; whether it came. The
    report may also come later, on an association the device opens."""
    needs = [(COMMITMENT, "")]
    link = POOL.take(device.ae_title, calling, needs) or associate(
        peer_of(device), archive.settings, [build_context(COMMITMENT)], calling_ae=calling
    )
    link.on_event_report(on_report)
    try:
        status = link.commit(transaction, refs)
        if status != 0x0000:
            raise PeerError(f"{device.ae_title} refused the commitment request: 0x{status:04X}")
        came = link.wait_for_event_report(wait)
    except BaseException:
        link.abort()
        raise
    POOL.give(device.ae_title, calling, link, archive.settings.forward_linger_seconds)
    return came
