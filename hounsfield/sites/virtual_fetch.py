"""Retrieve through a virtual partition: local copies as they are, the rest fetched from the
remote member that holds it (C-GET, else C-MOVE to the cache partition) and handed on as each
object arrives."""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from hounsfield.archive.context import Archive
from hounsfield.archive.query import Located, locate, query_level
from hounsfield.archive.store import store
from hounsfield.audit.events import Actor, acting
from hounsfield.catalog.partitions import Partition
from hounsfield.dicomnet import identifiers, operations
from hounsfield.dicomnet.contexts import COMMON_STORAGE
from hounsfield.dicomnet.incoming import Received
from hounsfield.dicomnet.peer import Peer
from hounsfield.errors import PeerError
from hounsfield.sites.virtual import Member, ask_all, peer, timeout_of
from hounsfield.storage.atomic import write_atomic
from hounsfield.storage.filemeta import file_meta_bytes

log = logging.getLogger(__name__)
COLLECT_SECONDS = 0.2  # a C-MOVE's arrivals are looked for in the index at most this often
FETCH_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # explicit VR little endian
    "1.2.840.10008.1.2",  # implicit VR little endian
)


@dataclass(frozen=True)
class Remote:
    """An object only a remote member holds."""

    member: Member
    study: str
    series: str
    sop_instance: str
    sop_class: str


@dataclass(frozen=True)
class Missing:
    """An object a member listed that did not arrive: counted as a failed sub-operation."""

    sop_instance: str
    sop_class: str
    reason: str


@dataclass
class Sources:
    """Where each object a retrieve names comes from."""

    local: list[Located] = field(default_factory=list)
    remote: list[Remote] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.local) + len(self.remote)


def sources(archive: Archive, identifier: Dataset, part: Partition) -> Sources:
    """The objects a C-MOVE / C-GET / WADO-RS names through a virtual partition: per SOP
    Instance UID the copy of the first member (in precedence order) that holds it."""
    query_level(identifier)  # refuse a malformed identifier before asking anyone

    def ask_local(member: Partition) -> list[Dataset]:
        return [_as_dataset(o) for o in locate(archive, identifier, partition=member)]

    def ask_remote(target: Peer) -> list[Dataset]:
        return _list_remote(archive, target, identifier)

    out = Sources()
    seen: set[str] = set()
    for member, found in ask_all(archive, part, ask_local, ask_remote):
        for ds in found:
            sop = str(ds.SOPInstanceUID)
            if sop in seen:
                continue
            seen.add(sop)
            if member.remote:
                out.remote.append(
                    Remote(
                        member,
                        str(ds.get("StudyInstanceUID", "")),
                        str(ds.get("SeriesInstanceUID", "")),
                        sop,
                        str(ds.get("SOPClassUID", "")),
                    )
                )
            else:
                out.local.append(ds.located)  # type: ignore[attr-defined]
    return out


def _identifier(study: str, series: str, sops: Collection[str]) -> Dataset:
    """The IMAGE-level identifier of these objects of one series."""
    query = identifiers.query("IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series)
    query.SOPInstanceUID = list(sops)
    return query


def _as_dataset(located: Located) -> Dataset:
    ds = Dataset()
    ds.SOPInstanceUID = located.sop_instance
    ds.located = located  # type: ignore[attr-defined]
    return ds


def _find(archive: Archive, target: Peer, query: Dataset) -> list[Dataset]:
    return list(operations.find(target, archive.settings, query))


def _list_remote(archive: Archive, target: Peer, identifier: Dataset) -> list[Dataset]:
    """The member's objects the identifier names, listed with IMAGE-level C-FINDs (under
    each of its studies and series, as a strict hierarchical peer needs)."""
    level = query_level(identifier)
    studies = [str(identifier.StudyInstanceUID)] if "StudyInstanceUID" in identifier else []
    if level == "PATIENT" or not studies:
        q = identifiers.query(
            "STUDY", StudyInstanceUID="", PatientID=str(identifier.get("PatientID", ""))
        )
        studies = [str(d.StudyInstanceUID) for d in _find(archive, target, q)]
    out: list[Dataset] = []
    for study in studies:
        series_uid = str(identifier.get("SeriesInstanceUID", "") or "")
        if level in ("SERIES", "IMAGE") and series_uid:
            series = [series_uid]
        else:
            q = identifiers.query("SERIES", StudyInstanceUID=study, SeriesInstanceUID="")
            series = [str(d.SeriesInstanceUID) for d in _find(archive, target, q)]
        for uid in series:
            sop = str(identifier.get("SOPInstanceUID", "") or "") if level == "IMAGE" else ""
            q = identifiers.query(
                "IMAGE",
                StudyInstanceUID=study,
                SeriesInstanceUID=uid,
                SOPInstanceUID=sop,
                SOPClassUID="",
            )
            for ds in _find(archive, target, q):
                ds.StudyInstanceUID, ds.SeriesInstanceUID = study, uid
                out.append(ds)
    return out


class Fetch:
    """Fetches the remote objects of `sources` in the background; iterate it for each object
    as it arrives (a Located to send on, or a Missing), then `close` to drop temporary copies.
    Fetched copies are stored in the partition's `cache_to` when it has one."""

    def __init__(self, archive: Archive, part: Partition, remote: list[Remote]) -> None:
        self.archive, self.part, self.remote = archive, part, remote
        self._out: queue.Queue[Located | Missing | None] = queue.Queue()
        self._folder = Path(tempfile.mkdtemp(prefix="hf-fetch-"))
        self._thread = threading.Thread(target=self._run, name="virtual-fetch", daemon=True)
        if remote:
            self._thread.start()

    def __iter__(self) -> Iterator[Located | Missing]:
        if not self.remote:
            return
        while (item := self._out.get()) is not None:
            yield item

    def close(self) -> None:
        """Remove the temporary copies (those not kept in a cache partition)."""
        shutil.rmtree(self._folder, ignore_errors=True)

    def _run(self) -> None:
        try:
            groups: dict[tuple[Member, str, str], list[Remote]] = {}
            for r in self.remote:
                groups.setdefault((r.member, r.study, r.series), []).append(r)
            for (member, study, series), wanted in groups.items():
                arrived: set[str] = set()
                try:
                    reason = self._fetch_series(member, study, series, wanted, arrived)
                except Exception as exc:  # (a member gone from the devices): the rest counts
                    log.exception("%s: fetch from %s failed", self.part.ae_title, member)
                    reason = f"fetch from {member} failed: {exc}"
                for r in wanted:
                    if r.sop_instance not in arrived:
                        self._out.put(Missing(r.sop_instance, r.sop_class, reason))
        finally:
            self._out.put(None)

    def _fetch_series(
        self, member: Member, study: str, series: str, wanted: list[Remote], arrived: set[str]
    ) -> str:
        """C-GET the wanted objects of one series from `member`, then C-MOVE what did not come
        to the cache partition when there is one (members that offer no C-GET, as many PACS);
        why any has still not come (the member's own counts are only logged: arrival is what
        counts)."""
        target = peer(self.archive, member, timeout_of(self.part))
        reason = self._get(target, member, study, series, wanted, arrived)
        left = [r for r in wanted if r.sop_instance not in arrived]
        if left and self.part.cache_to:
            reason = self._move(target, member, study, series, left, arrived)
        return reason

    def _get(
        self,
        target: Peer,
        member: Member,
        study: str,
        series: str,
        wanted: list[Remote],
        arrived: set[str],
    ) -> str:
        """C-GET the wanted objects, handing each on as it arrives; why any did not come."""
        by_uid = {r.sop_instance: r for r in wanted}
        # C-GET proposes a storage context per SOP class: the common ones where the member
        # did not name them
        classes = sorted({r.sop_class for r in wanted if r.sop_class}) or list(COMMON_STORAGE)

        def on_store(received: Received) -> int | None:
            if received.sop_instance not in by_uid or received.sop_instance in arrived:
                return None
            self._out.put(self._keep(target, received))
            arrived.add(received.sop_instance)
            return None

        try:
            result = operations.get(
                target,
                self.archive.settings,
                _identifier(study, series, by_uid),
                on_store,
                classes,
                syntaxes=FETCH_SYNTAXES,
            )
        except PeerError as exc:
            log.warning("%s: C-GET from %s failed: %s", self.part.ae_title, member, exc)
            return str(exc)
        if result.completed != len(arrived):
            log.warning(
                "%s: %s reported %d completed, %d arrived",
                self.part.ae_title,
                member,
                result.completed,
                len(arrived),
            )
        return f"{member} answered 0x{result.status:04X}, {result.completed} completed"

    def _move(
        self,
        target: Peer,
        member: Member,
        study: str,
        series: str,
        wanted: list[Remote],
        arrived: set[str],
    ) -> str:
        """C-MOVE the wanted objects to the cache partition's AE title (the member must know it
        as a destination; this node's DIMSE server stores what comes) and hand each on once it
        is in the index: looked for at each pending answer and after the last; why any did
        not come."""
        cache = self.part.cache_to
        assert cache is not None
        by_uid = {r.sop_instance: r for r in wanted}
        looked = [0.0]  # when the index was last looked at

        def collect() -> None:
            looked[0] = time.monotonic()
            pending = {uid: r for uid, r in by_uid.items() if uid not in arrived}
            if not pending:
                return
            for found in locate(self.archive, _identifier(study, series, pending), partition=cache):
                if found.sop_instance in pending and found.sop_instance not in arrived:
                    arrived.add(found.sop_instance)
                    self._out.put(found)

        def progressed(_progress: object) -> None:
            if time.monotonic() - looked[0] >= COLLECT_SECONDS:  # not one query per object
                collect()

        try:
            result = operations.move(
                target,
                self.archive.settings,
                _identifier(study, series, by_uid),
                cache,
                on_progress=progressed,
            )
            reason = (
                f"{member} answered the C-MOVE to {cache} 0x{result.status:04X}, "
                f"{result.completed} completed"
            )
        except PeerError as exc:
            log.warning("%s: C-MOVE from %s failed: %s", self.part.ae_title, member, exc)
            reason = f"C-MOVE to {cache}: {exc}"
        collect()  # each object the member sent was indexed before the member heard so
        return reason

    def _keep(self, source: Peer, received: Received) -> Located:
        """The arrived object as a stored file: in the cache partition (recorded in the audit
        trail as sent by the member), or a temporary one."""
        if self.part.cache_to:
            sender = Actor(
                source.ae_title,
                "DICOM",
                host=source.host,
                ae_title=source.ae_title,
                called=self.part.cache_to,
            )
            with acting(sender):
                store(
                    self.archive,
                    received.transfer_syntax,
                    received.data,
                    partition=self.part.cache_to,
                    calling_ae=source.ae_title,
                )
            ident = identifiers.query("IMAGE", SOPInstanceUID=received.sop_instance)
            kept = locate(self.archive, ident, partition=self.part.cache_to)
            if kept:
                return kept[0]
        meta = file_meta_bytes(
            received.sop_class, received.sop_instance, received.transfer_syntax, source.ae_title
        )
        path = self._folder / f"{generate_uid(prefix=None)}.dcm"
        written = write_atomic(path, (meta, received.data), fsync=False)
        return Located(
            received.sop_class,
            received.sop_instance,
            received.transfer_syntax,
            path,
            written.size,
        )
