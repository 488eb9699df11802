"""Push what only this archive holds to the peer, stored bytes as they are, as the partition."""

from __future__ import annotations

from dataclasses import replace

from hounsfield.archive.context import Archive
from hounsfield.archive.query import Located, locate
from hounsfield.catalog.partitions import Partition
from hounsfield.dicomnet.contexts import batches, storage_contexts
from hounsfield.dicomnet.operations import SUCCESSFUL
from hounsfield.dicomnet.scu import associate
from hounsfield.errors import ArchiveError, PeerError
from hounsfield.imaging.transcode import to_little_endian
from hounsfield.metrics import BYTES_SENT, INSTANCES_SENT
from hounsfield.sites.devices import Device
from hounsfield.sites.links import rate_cap
from hounsfield.sites.peers import peer_of
from hounsfield.sites.reconcile_fetch import identifier
from hounsfield.sites.reconcile_model import FAILED, PUSHED, Difference, Progress, quiet


def push(
    archive: Archive,
    part: Partition,
    device: Device,
    extra: list[Difference],
    *,
    progress: Progress = quiet,
) -> list[Difference]:
    """Send each study, series or instance held here only; the differences with their
    repair: pushed (the peer took every object) or failed (and why)."""
    located = {found: locate(archive, identifier(found), partition=part) for found in extra}
    objects = [obj for objs in located.values() for obj in objs]
    refused: dict[str, str] = {}
    error = ""
    try:
        _send(archive, part, device, objects, refused, progress)
    except ArchiveError as exc:  # the association failed: what was not acknowledged failed
        error = exc.message
    out = []
    for found, objs in located.items():
        why = [refused[o.sop_instance] for o in objs if o.sop_instance in refused]
        if not objs:
            out.append(replace(found, repair=FAILED, detail="no longer stored here"))
        elif why:
            out.append(replace(found, repair=FAILED, detail="; ".join(why[:3])))
        else:
            out.append(replace(found, repair=PUSHED, detail=""))
    if error:
        out = [replace(d, detail=d.detail or error) if d.repair == FAILED else d for d in out]
    return out


def _send(
    archive: Archive,
    part: Partition,
    device: Device,
    objects: list[Located],
    refused: dict[str, str],
    progress: Progress,
) -> None:
    """C-STORE `objects` over as few associations as their contexts allow; every object not
    acknowledged is in `refused` with the reason."""
    cap = rate_cap(device.ae_title, device.bandwidth_kbps)
    pending = {o.sop_instance: "not sent: the association failed" for o in objects}
    refused.update(pending)
    sent = 0
    for group in batches(objects, lambda o: (o.sop_class, o.transfer_syntax)):
        contexts = storage_contexts((o.sop_class, o.transfer_syntax) for o in group)
        peer = peer_of(device)
        with associate(peer, archive.settings, contexts, calling_ae=part.ae_title) as link:
            for obj in group:
                progress("pushing", sent, len(objects))
                sent += 1
                if cap is not None:
                    cap.spend(obj.size)
                try:
                    status = link.store(obj, convert=to_little_endian)
                except PeerError:
                    raise
                except (ArchiveError, OSError, ValueError) as exc:
                    refused[obj.sop_instance] = str(getattr(exc, "message", exc))
                    continue
                if status in SUCCESSFUL:
                    del refused[obj.sop_instance]
                    INSTANCES_SENT.labels("reconcile").inc()
                    BYTES_SENT.labels("reconcile").inc(obj.size)
                else:
                    refused[obj.sop_instance] = f"{obj.sop_instance}: status 0x{status:04X}"
    progress("pushing", len(objects), len(objects))
