"""A clinic archive and headquarters' partial copy of it, with known differences planted."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import httpx
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from hounsfield.archive.context import Archive
from hounsfield.dimse.server import DimseServer
from tests.conftest import make_archive, make_settings
from tests.orthanc import Orthanc
from tests.synth import instance, put, write_part10

Key = tuple[str, str, str, str, str]  # side, level, study, series, instance
Put = Callable[[Dataset], object]


@dataclass
class Study:
    """One study of the clinic: its UID, date and series (each a list of SOP UIDs)."""

    uid: str
    date: str
    time: str
    series: dict[str, list[str]] = field(default_factory=dict)

    def datasets(self, **attrs: object) -> list[Dataset]:
        """Its instances as datasets (attributes overridden by `attrs`)."""
        out = []
        for number, (series_uid, sops) in enumerate(self.series.items()):
            for n, sop in enumerate(sops):
                ds = instance(
                    StudyInstanceUID=self.uid,
                    SeriesInstanceUID=series_uid,
                    SOPInstanceUID=sop,
                    StudyDate=self.date,
                    StudyTime=self.time,
                    SeriesNumber=number + 1,
                    InstanceNumber=n + 1,
                )
                for key, value in attrs.items():
                    setattr(ds, key, value)
                out.append(ds)
        return out


@dataclass
class Scenario:
    """What the clinic holds, what headquarters lacks or holds alone, and where dates differ."""

    first: date
    last: date
    studies: list[Study]
    expected: set[Key] = field(default_factory=set)
    missing_objects: int = 0
    extra_objects: int = 0
    redated: list[str] = field(default_factory=list)
    hq_only: list[Dataset] = field(default_factory=list)


def day(first: date, n: int) -> str:
    """YYYYMMDD of the n-th day after `first`."""
    return (first + timedelta(days=n)).strftime("%Y%m%d")


def make_studies(first: date, per_day: list[int], series: int, per_series: int) -> list[Study]:
    """Studies over len(per_day) days, each with `series` series of `per_series` instances,
    an hour apart in StudyTime."""
    out = []
    for n, count in enumerate(per_day):
        for k in range(count):
            study = Study(generate_uid(), day(first, n), f"{7 + k % 15:02d}{(k * 7) % 60:02d}00")
            for _s in range(series):
                study.series[generate_uid()] = [generate_uid() for _ in range(per_series)]
            out.append(study)
    return out


def populate(clinic: Put, hq: Put, studies: list[Study], first: date) -> Scenario:
    """Store every study at the clinic and a partial copy at headquarters (through `hq`):
    two whole studies, two series and three instances missing there; a study, a series and
    two instances held there only; one study dated outside the range at headquarters and
    one dated outside it at the clinic."""
    assert len(studies) >= 14, "the scenario needs at least 14 studies"
    gone = {studies[1].uid, studies[-3].uid}
    gone_series = {next(iter(studies[3].series)), list(studies[-4].series)[-1]}
    s5 = list(studies[5].series.values())
    s7 = list(studies[-2].series.values())
    gone_sops = {s5[0][1], s5[-1][-1], s7[0][0]}
    scenario = Scenario(first, first, studies)
    for study in studies:
        clinic_date = "19990102" if study is studies[9] else study.date
        for ds in study.datasets(StudyDate=clinic_date):
            clinic(ds)
        for ds in study.datasets(StudyDate="19990101" if study is studies[8] else study.date):
            if (
                study.uid in gone
                or ds.SeriesInstanceUID in gone_series
                or ds.SOPInstanceUID in gone_sops
            ):
                continue
            hq(ds)
        scenario.last = max(scenario.last, date.fromisoformat(_iso(study.date)))
    scenario.redated = [studies[8].uid, studies[9].uid]
    _expect_missing(scenario, gone, gone_series, gone_sops)
    _hq_only(scenario, hq, studies[4], studies[6])
    return scenario


def _iso(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:]}"


def _expect_missing(
    scenario: Scenario, gone: set[str], gone_series: set[str], gone_sops: set[str]
) -> None:
    for study in scenario.studies:
        if study.uid in gone:
            scenario.expected.add(("missing", "STUDY", study.uid, "", ""))
            scenario.missing_objects += sum(len(s) for s in study.series.values())
            continue
        for series_uid, sops in study.series.items():
            if series_uid in gone_series:
                scenario.expected.add(("missing", "SERIES", study.uid, series_uid, ""))
                scenario.missing_objects += len(sops)
                continue
            for sop in sops:
                if sop in gone_sops:
                    scenario.expected.add(("missing", "IMAGE", study.uid, series_uid, sop))
                    scenario.missing_objects += 1


def _hq_only(scenario: Scenario, hq: Put, with_series: Study, with_sops: Study) -> None:
    """A study, a series (in `with_series`) and two instances (in `with_sops`) held at
    headquarters only."""
    only = Study(generate_uid(), with_series.date, "120000", {generate_uid(): []})
    only.series[next(iter(only.series))] = [generate_uid() for _ in range(3)]
    extra_series = Study(with_series.uid, with_series.date, with_series.time)
    extra_series.series[generate_uid()] = [generate_uid() for _ in range(2)]
    first_series = next(iter(with_sops.series))
    extra_sops = Study(with_sops.uid, with_sops.date, with_sops.time)
    extra_sops.series[first_series] = [generate_uid() for _ in range(2)]
    for ds in [*only.datasets(), *extra_series.datasets(), *extra_sops.datasets()]:
        hq(ds)
        scenario.hq_only.append(ds)
    scenario.expected.add(("extra", "STUDY", only.uid, "", ""))
    scenario.expected.add(("extra", "SERIES", with_series.uid, next(iter(extra_series.series)), ""))
    for sop in extra_sops.series[first_series]:
        scenario.expected.add(("extra", "IMAGE", with_sops.uid, first_series, sop))
    scenario.extra_objects = 3 + 2 + 2


@contextmanager
def clinic_node(tmp_path: Path, ae_title: str = "CLINIC") -> Iterator[tuple[Archive, DimseServer]]:
    """A Hounsfield node playing the clinic archive (its own SQLite index and storage)."""
    settings = make_settings(tmp_path / ae_title.lower(), None, ae_title=ae_title, fsync=False)  # type: ignore[arg-type]
    archive = make_archive(settings)
    server = DimseServer(archive)
    server.start()
    try:
        yield archive, server
    finally:
        server.stop(grace_seconds=2)
        archive.close()


def into(archive: Archive, partition: str | None = None) -> Put:
    """Store a dataset into an archive (a partition of it)."""
    return lambda ds: put(archive, ds, partition=partition)


def into_orthanc(orthanc: Orthanc) -> Put:
    """Upload a dataset to Orthanc over its REST API."""
    client = httpx.Client(base_url=orthanc.url, timeout=30)

    def upload(ds: Dataset) -> None:
        buf = io.BytesIO()
        write_part10(ds, buf)
        answer = client.post("/instances", content=buf.getvalue())
        assert answer.status_code == 200, answer.text

    return upload


def found(diffs: list[object]) -> set[Key]:
    """The differences of a report as comparable keys."""
    return {
        (d.side, d.level, d.study, d.series, d.instance)  # type: ignore[attr-defined]
        for d in diffs
    }
