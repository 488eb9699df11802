"""The peer's side of a reconciliation by C-FIND, splitting ranges whose answers it caps."""

from __future__ import annotations

from datetime import date, timedelta
from types import TracebackType
from typing import Any

from pydicom.dataset import Dataset

from hounsfield.dicomnet import identifiers
from hounsfield.dicomnet.contexts import query_contexts
from hounsfield.dicomnet.peer import Peer
from hounsfield.dicomnet.scu import FIND, PeerAssociation, associate
from hounsfield.errors import AssociationAborted, PeerError, PeerFailed
from hounsfield.settings import Settings
from hounsfield.sites.reconcile_model import (
    IMAGE,
    SERIES,
    STUDY,
    Instance,
    SeriesCount,
    StudyCount,
    dicom_date,
)
from hounsfield.uids import is_valid_uid

CANCELLED = 0xFE00  # Orthanc ends a capped answer (LimitFindResults) this way
DAY = 86_400
MIN_SPAN = 60  # seconds: the narrowest StudyTime range asked for


def capped_status(status: int | None) -> bool:
    """Whether a C-FIND's final status says the answer was cut short: cancelled although we
    did not cancel, or a warning."""
    return status is not None and (status == CANCELLED or status & 0xF000 == 0xB000)


def out_of_resources(status: int) -> bool:
    """A refusal for too many matches (dcm4chee's query limit answers this way)."""
    return status & 0xFF00 == 0xA700


class PeerSide:
    """C-FINDs to one peer over one association (opened again when the peer closed it)."""

    def __init__(self, peer: Peer, settings: Settings, calling_ae: str) -> None:
        self.peer, self.settings, self.calling_ae = peer, settings, calling_ae
        self.split_at = settings.reconcile_split_at
        self.queries = 0
        self.invalid = 0
        self._link: PeerAssociation | None = None

    def __enter__(self) -> PeerSide:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the association, if one is open."""
        link, self._link = self._link, None
        if link is None:
            return
        try:
            link.release()
        except PeerError:
            link.abort()

    def _open(self) -> PeerAssociation:
        if self._link is None or not self._link.assoc.is_established:
            self._link = associate(
                self.peer, self.settings, query_contexts([FIND]), calling_ae=self.calling_ae
            )
        return self._link

    def find(self, query: Dataset, *, splittable: bool = False) -> tuple[list[Dataset], bool]:
        """The answers to one C-FIND, and whether the peer capped them: a final status that
        says so, an out-of-resources refusal, or (for a `splittable` study query) at least
        `reconcile_split_at` answers."""
        self.queries += 1
        try:
            try:
                answers, status = self._ask(query)
            except AssociationAborted:  # the peer closed an idle association: once more
                self.close()
                answers, status = self._ask(query)
        except PeerFailed as exc:
            if out_of_resources(exc.status):
                return [], True
            raise
        many = splittable and len(answers) >= self.split_at
        return answers, many or capped_status(status)

    def _ask(self, query: Dataset) -> tuple[list[Dataset], int | None]:
        with self._open().find(query) as stream:
            answers = list(stream)
        return answers, stream.status

    def valid(self, uid: str) -> bool:
        """Whether a UID the peer answered can be used; the others are counted in
        `invalid` and left out."""
        if is_valid_uid(uid):
            return True
        self.invalid += 1
        return False

    def studies(self, lo: date, hi: date, incomplete: list[str]) -> list[StudyCount]:
        """The studies dated from `lo` to `hi`. A range whose answer is capped is split in
        halves down to single days, a capped day into StudyTime ranges down to a minute;
        what still cannot be listed in full is told in `incomplete`."""
        found: dict[str, StudyCount] = {}
        self._range(lo, hi, found, incomplete)
        return list(found.values())

    def _range(
        self, lo: date, hi: date, found: dict[str, StudyCount], incomplete: list[str]
    ) -> None:
        dates = dicom_date(lo) if lo == hi else f"{dicom_date(lo)}-{dicom_date(hi)}"
        answers, capped = self.find(_study_query(dates), splittable=True)
        self._keep(answers, found)
        if not capped:
            return
        if lo < hi:
            mid = lo + timedelta(days=(hi - lo).days // 2)
            self._range(lo, mid, found, incomplete)
            self._range(mid + timedelta(days=1), hi, found, incomplete)
            return
        seen = self._times(lo, 0, DAY, found, incomplete)
        unseen = {_uid(a) for a in answers} - seen
        if unseen:
            incomplete.append(
                f"{dicom_date(lo)}: {len(unseen)} of the peer's studies match no StudyTime "
                "range; others like them may be left out"
            )

    def _times(
        self, day: date, start: int, end: int, found: dict[str, StudyCount], incomplete: list[str]
    ) -> set[str]:
        """The studies of `day` timed from `start` up to (not including) `end` seconds."""
        times = f"{_hhmmss(start)}-{_hhmmss(end - 1)}.999999"
        answers, capped = self.find(_study_query(dicom_date(day), times), splittable=True)
        self._keep(answers, found)
        seen = {_uid(a) for a in answers}
        if not capped:
            return seen
        if end - start <= MIN_SPAN:
            incomplete.append(f"{dicom_date(day)} {times}: the peer capped its answer")
            return seen
        mid = (start + end) // 2
        return (
            seen
            | self._times(day, start, mid, found, incomplete)
            | self._times(day, mid, end, found, incomplete)
        )

    def study(self, uid: str) -> StudyCount | None:
        """The study with this UID alone, whatever its date."""
        query = _study_query("")
        query.StudyInstanceUID = uid
        found: dict[str, StudyCount] = {}
        self._keep(self.find(query)[0], found)
        return found.get(uid)

    def series(self, study_uid: str) -> tuple[list[SeriesCount], bool]:
        """The series of a study, and whether the peer capped the list."""
        query = identifiers.query(SERIES, StudyInstanceUID=study_uid, SeriesInstanceUID="")
        query.NumberOfSeriesRelatedInstances = ""
        answers, capped = self.find(query)
        out = [
            SeriesCount(uid, _count(a.get("NumberOfSeriesRelatedInstances")))
            for a in answers
            if self.valid(uid := str(a.get("SeriesInstanceUID", "") or "").strip())
        ]
        return out, capped

    def instances(self, study_uid: str, series_uid: str) -> tuple[list[Instance], bool]:
        """The instances of a series, and whether the peer capped the list."""
        query = identifiers.query(
            IMAGE, StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, SOPInstanceUID=""
        )
        query.SOPClassUID = ""
        answers, capped = self.find(query)
        out = [
            Instance(uid, _sop_class(a))
            for a in answers
            if self.valid(uid := str(a.get("SOPInstanceUID", "") or "").strip())
        ]
        return out, capped

    def _keep(self, answers: list[Dataset], found: dict[str, StudyCount]) -> None:
        for answer in answers:
            uid = _uid(answer)
            if self.valid(uid):
                found[uid] = StudyCount(
                    uid,
                    str(answer.get("StudyDate", "") or "").strip()[:8],
                    _count(answer.get("NumberOfStudyRelatedInstances")),
                    tuple(c for c in _values(answer.get("SOPClassesInStudy")) if is_valid_uid(c)),
                )

    def count(self, study_uid: str, incomplete: list[str]) -> int:
        """A study's instances counted series by series (then instance by instance), for
        peers that do not answer NumberOfStudyRelatedInstances."""
        listed, capped = self.series(study_uid)
        total = 0
        for one in listed:
            if one.instances is not None:
                total += one.instances
                continue
            found, short = self.instances(study_uid, one.uid)
            capped = capped or short
            total += len(found)
        if capped:
            incomplete.append(f"study {study_uid}: the peer capped a list while counting it")
        return total


def _study_query(dates: str, times: str = "") -> Dataset:
    query = identifiers.query(STUDY, StudyInstanceUID="", StudyDate=dates, StudyTime=times)
    query.NumberOfStudyRelatedInstances = ""
    query.SOPClassesInStudy = ""
    return query


def _sop_class(answer: Dataset) -> str:
    value = str(answer.get("SOPClassUID", "") or "").strip()
    return value if is_valid_uid(value) else ""


def _uid(answer: Dataset) -> str:
    return str(answer.get("StudyInstanceUID", "") or "").strip()


def _count(value: Any) -> int | None:
    """An IS count as answered, or None when the peer left it empty."""
    if value is None or str(value).strip() == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _values(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    values = [value] if isinstance(value, str) else list(value)
    return tuple(str(v) for v in values if str(v))


def _hhmmss(seconds: int) -> str:
    return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"
