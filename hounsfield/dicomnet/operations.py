"""One request, one association: echo, find, move, get and send to a peer in a single call."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from hounsfield.dicomnet.contexts import (
    LITTLE_ENDIAN,
    batches,
    get_contexts,
    query_contexts,
    storage_contexts,
)
from hounsfield.dicomnet.incoming import StoreHandler
from hounsfield.dicomnet.peer import Peer
from hounsfield.dicomnet.responses import Progress, RetrieveResult
from hounsfield.dicomnet.scu import (
    FIND,
    GET,
    MOVE,
    VERIFICATION,
    Converter,
    Stored,
    associate,
)
from hounsfield.errors import ArchiveError, PeerError
from hounsfield.settings import Settings

ProgressHandler = Callable[[Progress], object]
SUCCESSFUL = (0x0000, 0xB000, 0xB006, 0xB007)


def echo(peer: Peer, settings: Settings) -> int:
    """C-ECHO; the peer's status."""
    with associate(peer, settings, query_contexts([VERIFICATION])) as link:
        return link.echo()


def find(peer: Peer, settings: Settings, query: Dataset, model: str = FIND) -> Iterator[Dataset]:
    """C-FIND; the matches as they arrive. Closing the iterator early (`break` drops it)
    sends C-CANCEL, then releases."""
    with (
        associate(peer, settings, query_contexts([model])) as link,
        link.find(query, model) as found,
    ):
        yield from found


def move(
    peer: Peer,
    settings: Settings,
    query: Dataset,
    destination: str,
    *,
    model: str = MOVE,
    on_progress: ProgressHandler | None = None,
) -> RetrieveResult:
    """C-MOVE of what `query` matches to `destination`; how it ended."""
    with associate(peer, settings, query_contexts([model])) as link:
        return link.move(query, destination, model).wait(on_progress)


def get(
    peer: Peer,
    settings: Settings,
    query: Dataset,
    on_store: StoreHandler,
    sop_classes: Sequence[str],
    *,
    syntaxes: Sequence[str] = LITTLE_ENDIAN,
    model: str = GET,
    on_progress: ProgressHandler | None = None,
) -> RetrieveResult:
    """C-GET; each object of `sop_classes` that comes back (in one of `syntaxes`) goes to
    `on_store`; how it ended."""
    contexts, roles = get_contexts(model, sop_classes, syntaxes)
    with associate(peer, settings, contexts, ext_neg=roles) as link:
        return link.get(query, on_store, model).wait(on_progress)


@dataclass
class SendReport:
    """What `send` did with each object: the peer's status, or why it was not sent."""

    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every object was sent and the peer took it (success or warning)."""
        return not self.errors and all(s in SUCCESSFUL for s in self.statuses.values())


def send(
    peer: Peer,
    settings: Settings,
    objects: Iterable[Stored],
    *,
    convert: Converter | None = None,
    on_sent: Callable[[Stored, int], object] | None = None,
) -> SendReport:
    """C-STORE stored objects, as they are on disk where the peer takes their syntax, over
    as few associations as the 128-context limit allows. An object that cannot be sent is
    reported and the rest go on; a PeerError (the association failed) is raised."""
    report = SendReport()
    for group in batches(objects, lambda o: (o.sop_class, o.transfer_syntax)):
        contexts = storage_contexts((o.sop_class, o.transfer_syntax) for o in group)
        with associate(peer, settings, contexts) as link:
            for obj, following in zip(group, [*group[1:], None], strict=True):
                try:
                    status = link.store(obj, convert=convert, following=following)
                except PeerError:
                    raise
                except ArchiveError as exc:
                    report.errors[obj.sop_instance] = exc.message
                    continue
                report.statuses[obj.sop_instance] = status
                if on_sent is not None:
                    on_sent(obj, status)
    return report
