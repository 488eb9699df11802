"""What the reconcile part does besides reconciling: load, delete, list by hand, C-MOVE."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydicom import dcmwrite
from pydicom.dataset import Dataset

from bench.dicom_ops import CALLING_AE, PDU
from bench.procs import LOCALHOST, dcmtk, run, run_parallel
from bench.reconcile_corpus import Item, Month
from bench.servers import Server

LOADERS = 4  # storescu processes loading Orthanc
SOP_LINE = re.compile(r"\(0008,0018\) UI \[([0-9.]+)\]")
MOVED = "Received Final Move Response (Success)"  # all sub-operations completed


@dataclass(frozen=True)
class Listing:
    """The manual comparison: SOP Instance UIDs on each side and what differs, timed."""

    seconds: float
    queries: int
    peer: int
    local: int
    missing: frozenset[str]
    extra: frozenset[str]


def load_orthanc(orthanc: Server, month: Month, timeout: float) -> float:
    """storescu of every day folder into Orthanc, LOADERS processes at once; seconds."""
    folders = sorted({str(Path(i.path).parent.parent) for i in month.items})
    args = [dcmtk("storescu"), "-aet", CALLING_AE, "-aec", orthanc.ae_title, "+sd", "+r"]
    args += ["--max-send-pdu", PDU, LOCALHOST, str(orthanc.port)]
    commands = [[*args, *folders[n::LOADERS]] for n in range(LOADERS)]
    done = run_parallel(commands, timeout)
    for one in done:
        if one.returncode != 0:
            raise RuntimeError(f"storescu into Orthanc: exit {one.returncode}: {one.stderr[-800:]}")
    return done[0].seconds


def orthanc_instances(orthanc: Server) -> int:
    """How many instances Orthanc holds."""
    answer = httpx.get(f"{orthanc.http_base}/statistics", timeout=30)
    answer.raise_for_status()
    return int(answer.json()["CountInstances"])


def delete_at_hq(hq: Server, partition: str, items: Sequence[Item]) -> None:
    """DELETE each instance from the partition through DICOMweb."""
    root = f"{hq.dicomweb_root}/aets/{partition}/studies"
    with httpx.Client(timeout=60) as client:
        for i in items:
            url = f"{root}/{i.study}/series/{i.series}/instances/{i.sop}"
            answer = client.delete(url)
            if answer.status_code != 404:  # already gone: a run that failed half-way
                answer.raise_for_status()


def _listing(ae_title: str, port: int, days: Sequence[str], timeout: float) -> set[str]:
    """findscu at IMAGE level, one process (and association) per day: the SOP UIDs."""
    found: set[str] = set()
    for day in days:
        args = [dcmtk("findscu"), "-S", "-v", "-aet", CALLING_AE, "-aec", ae_title]
        args += ["-k", "QueryRetrieveLevel=IMAGE", "-k", f"StudyDate={day}"]
        for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            args += ["-k", key]
        done = run([*args, LOCALHOST, str(port)], timeout).check()
        found.update(SOP_LINE.findall(done.stdout + done.stderr))
    return found


def list_by_hand(
    orthanc: Server, hq: Server, partition: str, days: Sequence[str], timeout: float
) -> Listing:
    """What an operator without reconciliation does: list the month's instances on both
    sides (IMAGE-level C-FIND per day) and compare the two lists."""
    started = time.perf_counter()
    theirs = _listing(orthanc.ae_title, orthanc.port, days, timeout)
    mine = _listing(partition, hq.port, days, timeout)
    missing, extra = frozenset(theirs - mine), frozenset(mine - theirs)
    seconds = time.perf_counter() - started
    return Listing(seconds, 2 * len(days), len(theirs), len(mine), missing, extra)


def move_queries(items: Sequence[Item], folder: Path) -> list[Path]:
    """One IMAGE-level C-MOVE identifier file per instance, for movescu."""
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for n, i in enumerate(items):
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID, query.SeriesInstanceUID, query.SOPInstanceUID = (
            i.study,
            i.series,
            i.sop,
        )
        path = folder / f"q{n:05d}.dcm"
        dcmwrite(path, query, implicit_vr=True, little_endian=True)
        out.append(path)
    return out


def move(orthanc: Server, destination: str, queries: Sequence[Path], timeout: float) -> float:
    """One movescu (one association, a C-MOVE per identifier file) from Orthanc to
    `destination`; wall seconds, after checking every instance was moved."""
    args = [dcmtk("movescu"), "-S", "-v", "-aet", CALLING_AE, "-aec", orthanc.ae_title]
    args += ["-aem", destination, LOCALHOST, str(orthanc.port), *map(str, queries)]
    done = run(args, timeout)
    text = done.stdout + done.stderr
    moved = text.count(MOVED)
    if done.returncode != 0 or moved != len(queries):
        raise RuntimeError(f"movescu moved {moved} of {len(queries)}: {text.strip()[-1500:]}")
    return done.seconds
