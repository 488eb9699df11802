"""A virtual partition answers queries for its members: local partitions and remote peers,
asked in parallel, their answers merged without duplicates in the members' precedence."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from pydicom.dataset import Dataset

from hounsfield.archive.context import Archive
from hounsfield.archive.query import Level, Root, find, query_level
from hounsfield.catalog.partitions import Partition
from hounsfield.dicomnet import operations
from hounsfield.dicomnet.peer import Peer, parse_address
from hounsfield.dicomnet.scu import FIND
from hounsfield.errors import InvalidDataset, NotFound, PeerError
from hounsfield.sites.devices import find_device

log = logging.getLogger(__name__)
DEVICE = "device:"
DEFAULT_MEMBER_TIMEOUT = 10.0  # seconds
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
KEY_OF: dict[Level, tuple[str, ...]] = {
    "PATIENT": ("PatientID", "IssuerOfPatientID"),
    "STUDY": ("StudyInstanceUID",),
    "SERIES": ("SeriesInstanceUID",),
    "IMAGE": ("SOPInstanceUID",),
}
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="virtual")


@dataclass(frozen=True)
class Member:
    """One member of a virtual partition: a local partition, or a remote device."""

    name: str
    remote: bool

    @classmethod
    def parse(cls, text: str) -> Member:
        """ "CLINIC_A" (a local partition) or "device:PACS" (a known device)."""
        text = text.strip()
        if text.startswith(DEVICE):
            return cls(text[len(DEVICE) :].strip(), True)
        return cls(text, False)

    def __str__(self) -> str:
        return f"{DEVICE}{self.name}" if self.remote else self.name


def members(part: Partition) -> list[Member]:
    """The members of a virtual partition, in precedence order."""
    return [Member.parse(m) for m in part.members]


def timeout_of(part: Partition) -> float:
    """Seconds each remote member gets to answer."""
    return part.member_timeout or DEFAULT_MEMBER_TIMEOUT


def peer(archive: Archive, member: Member, timeout: float) -> Peer:
    """The remote member as a peer whose every wait is bounded by `timeout`."""
    found = find_device(archive, member.name)
    if found is None:
        raise NotFound(f"no device {member.name!r} (a member of a virtual partition)")
    alternates = tuple(parse_address(a) for a in found.alternates)
    return Peer(
        found.ae_title,
        found.host,
        found.port,
        timeout,
        timeout,
        timeout,
        alternates=alternates,
        tls=found.tls,
    )


def ask_all(
    archive: Archive,
    part: Partition,
    ask_local: Callable[[Partition], list[Dataset]],
    ask_remote: Callable[[Peer], list[Dataset]],
) -> list[tuple[Member, list[Dataset]]]:
    """Ask every member at once; the answers of those that answered in time, in precedence
    order. A member that fails or is late is logged and left out."""
    timeout = timeout_of(part)
    futures: list[tuple[Member, Future[list[Dataset]]]] = []
    for member in members(part):
        if member.remote:
            target = peer(archive, member, timeout)
            futures.append((member, _POOL.submit(ask_remote, target)))
        else:
            local = archive.partition(member.name)
            futures.append((member, _POOL.submit(ask_local, local)))
    deadline = time.monotonic() + timeout + 1.0
    out: list[tuple[Member, list[Dataset]]] = []
    for member, future in futures:
        try:
            out.append((member, future.result(timeout=max(0.0, deadline - time.monotonic()))))
        except FutureTimeout:
            log.warning("%s: member %s did not answer within %g s", part.ae_title, member, timeout)
        except (PeerError, NotFound, InvalidDataset) as exc:
            log.warning("%s: member %s failed: %s", part.ae_title, member, exc)
        except Exception:
            log.exception("%s: member %s failed", part.ae_title, member)
    return out


def merged(level: Level, answers: list[tuple[Member, list[Dataset]]]) -> Iterator[Dataset]:
    """The answers without duplicates: per key of the level, the first member's answer."""
    keys = KEY_OF[level]
    seen: set[tuple[str, ...]] = set()
    for _member, found in answers:
        for ds in found:
            key = tuple(str(ds.get(k, "") or "") for k in keys)
            if key in seen:
                continue
            seen.add(key)
            yield ds


def virtual_find(
    archive: Archive,
    identifier: Dataset,
    part: Partition,
    *,
    root: Root = "study",
    limit: int | None = None,
    offset: int = 0,
    whole_header: bool = False,
) -> list[Dataset]:
    """C-FIND / QIDO-RS through a virtual partition: every member asked in parallel, the
    answers merged; Retrieve AE Title is the virtual partition's."""
    level = query_level(identifier)
    if root == "study" and level == "PATIENT":
        raise InvalidDataset("PATIENT level is not part of the Study Root model")
    model = PATIENT_ROOT_FIND if root == "patient" else FIND
    settings = archive.settings

    def ask_local(member: Partition) -> list[Dataset]:
        return list(
            find(archive, identifier, partition=member, root=root, whole_header=whole_header)
        )

    def ask_remote(target: Peer) -> list[Dataset]:
        return list(operations.find(target, settings, identifier, model))

    answers = merged(level, ask_all(archive, part, ask_local, ask_remote))
    out: list[Dataset] = []
    for n, ds in enumerate(answers):
        if n < offset:
            continue
        if limit is not None and len(out) >= limit:
            break
        ds.RetrieveAETitle = part.ae_title
        out.append(ds)
    return out
