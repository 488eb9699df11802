"""C-STORE to a cluster: each association from the first unacknowledged instance on, at the
next node when one fails; instances already acknowledged are never sent again."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pynetdicom.presentation import PresentationContext

from hounsfield.client.failover import fails_over
from hounsfield.client.files import Part10
from hounsfield.client.nodes import NodeRing
from hounsfield.client.reports import SUCCESSFUL, SendReport
from hounsfield.dicomnet.contexts import batches, storage_contexts
from hounsfield.dicomnet.peer import Address, format_address
from hounsfield.dicomnet.scu import PeerAssociation
from hounsfield.errors import ArchiveError, PeerError

Connect = Callable[[Address, Sequence[PresentationContext]], PeerAssociation]
"""Opens an association to a node proposing the contexts, or raises a PeerError."""
Done = Callable[[Part10, str | None], object]
"""Told each instance once its fate is known: the node that acknowledged it, or None."""


class OutOfResources(PeerError):
    """A node answered a C-STORE with "Refused: out of resources" (its disk or database):
    another node may take the instance."""


@dataclass(frozen=True)
class Unit:
    """Instances sent in order over one association at a time; `key` picks the first node
    (affinity), None the next node in turn."""

    items: tuple[Part10, ...]
    key: str | None = None


def units(items: Sequence[Part10], *, affinity: bool, associations: int) -> list[Unit]:
    """With affinity, one unit per study (in order of first appearance); otherwise the
    instances in `associations` consecutive shares."""
    if affinity:
        studies: dict[str, list[Part10]] = {}
        for item in items:
            studies.setdefault(item.study, []).append(item)
        return [Unit(tuple(group), study or None) for study, group in studies.items()]
    shares = max(1, min(associations, len(items)))
    size, extra = divmod(len(items), shares)
    out, start = [], 0
    for n in range(shares):
        end = start + size + (1 if n < extra else 0)
        out.append(Unit(tuple(items[start:end])))
        start = end
    return [u for u in out if u.items]


def send_unit(
    unit: Unit, ring: NodeRing, connect: Connect, report: SendReport, done: Done, rounds: int
) -> None:
    """Send a unit's instances, failing over until every node failed `rounds` times in a row
    without acknowledging anything; what is left then is reported failed."""
    todo = deque(unit.items)
    misses = 0
    while todo:
        node = ring.order(unit.key)[0]
        before = len(todo)
        try:
            _send_batch(node, todo, connect, report, done)
        except PeerError as exc:
            ring.failed(node)
            misses = 0 if len(todo) < before else misses + 1
            if not fails_over(exc) and not isinstance(exc, OutOfResources):
                _give_up(todo, exc, report, done, everything=True)
            elif misses >= rounds * len(ring):
                _give_up(todo, exc, report, done, everything=not isinstance(exc, OutOfResources))
                misses = 0
            else:
                report.failed_over()
            continue
        ring.succeeded(node)
        misses = 0


def _give_up(
    todo: deque[Part10], exc: PeerError, report: SendReport, done: Done, *, everything: bool
) -> None:
    """Report the rest failed (or only the first instance, which every node refused)."""
    for _ in range(len(todo) if everything else 1):
        item = todo.popleft()
        report.not_sent(item.sop_instance, exc.message)
        done(item, None)


def _send_batch(
    node: Address, todo: deque[Part10], connect: Connect, report: SendReport, done: Done
) -> None:
    """One association: the first instances of `todo` whose contexts fit it, each removed
    from `todo` once answered."""
    group = next(batches(list(todo), _pair))
    name = format_address(node)
    with connect(node, storage_contexts(_pair(i) for i in group)) as link:
        for item in group:
            try:
                status = link.store(item)
            except PeerError:
                raise
            except (ArchiveError, OSError, ValueError) as exc:  # e.g. no context accepted
                todo.popleft()
                report.not_sent(item.sop_instance, f"{name}: {_message(exc)}")
                done(item, None)
                continue
            if status & 0xFF00 == 0xA700:
                raise OutOfResources(f"{name}: out of resources (0x{status:04X})")
            todo.popleft()
            report.acknowledged(item.sop_instance, name, status)
            done(item, name if status in SUCCESSFUL else None)


def _pair(item: Part10) -> tuple[str, str]:
    return item.sop_class, item.transfer_syntax


def _message(exc: Exception) -> str:
    return exc.message if isinstance(exc, ArchiveError) else f"{type(exc).__name__}: {exc}"
