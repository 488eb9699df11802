"""The measured DICOM operations: C-STORE, C-FIND, C-GET and C-MOVE against one server."""

from __future__ import annotations

import shutil
import socket
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import Event

from bench.procs import LOCALHOST, Completed, dcmtk, run, run_parallel

CALLING_AE = "BENCH"
PDU = "131072"  # DCMTK's largest PDU; both servers accept it
PENDING = (0xFF00, 0xFF01)
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve - FIND


@dataclass(frozen=True)
class Timed:
    """One measured operation: wall seconds and how many objects it moved or matched."""

    seconds: float
    count: int
    nbytes: int = 0
    note: str = ""

    @property
    def per_second(self) -> float:
        """Objects per second."""
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_second(self) -> float:
        """MB (10^6 bytes) per second."""
        return self.nbytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Latency:
    """Wall time of repeated queries, and the answers that were wrong."""

    median_ms: float
    p90_ms: float
    runs: int
    wrong: tuple[str, ...] = ()


def _store_args(
    ae_title: str, port: int, files: Sequence[Path], host: str, wrap: Sequence[str]
) -> list[str]:
    return [
        *wrap,
        dcmtk("storescu"),
        "-aet",
        CALLING_AE,
        "-aec",
        ae_title,
        "-R",
        "--max-send-pdu",
        PDU,
        "-pdu",
        PDU,
        host,
        str(port),
        *(str(f) for f in files),
    ]


def _store_failures(done: Completed) -> str:
    text = done.stdout + done.stderr
    if done.returncode != 0 or "Store Failed" in text or "E: " in text:
        return f"storescu exit {done.returncode}: {text.strip()[-1500:] or '(no output)'}"
    return ""


def store(
    ae_title: str,
    port: int,
    files: Sequence[Path],
    associations: int,
    timeout: float,
    host: str = LOCALHOST,
    wrap: Sequence[str] = (),
) -> Timed:
    """C-STORE `files` to `host` over `associations` parallel storescu processes (run under
    the command prefix `wrap`, e.g. `ip netns exec NS`, when given)."""
    # Consecutive slices of near-equal size, as a modality splitting a study would send them.
    bounds = [len(files) * i // associations for i in range(associations + 1)]
    parts = [list(files[a:b]) for a, b in pairwise(bounds)]
    commands = [_store_args(ae_title, port, p, host, wrap) for p in parts if p]
    results = run_parallel(commands, timeout)
    errors = [e for e in (_store_failures(r) for r in results) if e]
    if errors:
        raise RuntimeError("C-STORE failed: " + "\n".join(errors))
    seconds = max(r.seconds for r in results)
    return Timed(seconds, len(files), sum(f.stat().st_size for f in files))


def _nodelay(event: Event) -> None:
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def associate(
    ae_title: str, port: int, timeout: float = 60, max_pdu: int | None = None
) -> Association:
    """One Study Root C-FIND association (TCP_NODELAY); `max_pdu` 0: unlimited."""
    ae = AE(ae_title=CALLING_AE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    if max_pdu is not None:
        ae.maximum_pdu_size = max_pdu
    ae.add_requested_context(STUDY_ROOT_FIND)
    assoc = ae.associate(
        LOCALHOST, port, ae_title=ae_title, evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)]
    )
    if not assoc.is_established:
        raise RuntimeError(f"association with {ae_title} on port {port} refused")
    return assoc


def _find(assoc: Association, query: Dataset) -> list[Dataset]:
    """Every identifier a C-FIND returns; raises on failure or an undecodable answer."""
    matches: list[Dataset] = []
    for status, identifier in assoc.send_c_find(query, STUDY_ROOT_FIND):
        if not status:
            raise RuntimeError("C-FIND: no response (association aborted or timed out)")
        code = int(status.Status)
        if code in PENDING:
            if identifier is None:
                raise RuntimeError("C-FIND: a pending response carried no decodable identifier")
            matches.append(identifier)
        elif code != 0x0000:
            raise RuntimeError(f"C-FIND failed with status 0x{code:04X}")
    return matches


STUDY_RETURN_KEYS = (
    "PatientName",
    "PatientID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyDescription",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)


def study_query(study_uid: str) -> Dataset:
    """A typical STUDY-level query by Study Instance UID with common return keys."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    for keyword in STUDY_RETURN_KEYS:
        setattr(ds, keyword, None)
    return ds


def latency_of(samples: list[float], wrong: Sequence[str] = ()) -> Latency:
    """Median and 90th percentile in ms of wall times in seconds."""
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return Latency(statistics.median(ordered) * 1000, p90 * 1000, len(ordered), tuple(wrong))


def find_latency(ae_title: str, port: int, study_uids: Sequence[str], runs: int) -> Latency:
    """`runs` STUDY-level C-FINDs over one open association, cycling through `study_uids`.

    Each answer must be exactly the study asked for; wrong answers are listed, not fatal.
    """
    assoc = associate(ae_title, port)
    samples: list[float] = []
    wrong: list[str] = []
    try:
        _find(assoc, study_query(study_uids[0]))  # warm-up, not measured
        for i in range(runs):
            uid = study_uids[i % len(study_uids)]
            started = time.perf_counter()
            matches = _find(assoc, study_query(uid))
            samples.append(time.perf_counter() - started)
            got = [str(m.get("StudyInstanceUID", "")) for m in matches]
            if got != [uid]:
                wrong.append(f"query {i + 1} for {uid} answered {len(got)} studies {got}")
    finally:
        assoc.release()
    return latency_of(samples, wrong)


def findscu_latency(
    ae_title: str, port: int, study_uids: Sequence[str], runs: int, timeout: float
) -> Latency:
    """`runs` findscu processes (one association each), by Study Instance UID."""
    samples: list[float] = []
    for i in range(runs):
        args = [dcmtk("findscu"), "-S", "-aet", CALLING_AE, "-aec", ae_title]
        args += [
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study_uids[i % len(study_uids)]}",
        ]
        for key in ("PatientName", "PatientID", "StudyDate", "NumberOfStudyRelatedInstances"):
            args += ["-k", key]
        done = run([*args, LOCALHOST, str(port)], timeout=timeout).check()
        samples.append(done.seconds)
    return latency_of(samples)


def image_count(
    ae_title: str, port: int, date_range: str, study_uids: Sequence[str], expected: int
) -> Timed:
    """IMAGE-level C-FIND of every instance in a StudyDate range, counted and checked.

    One Study Root query carrying only StudyDate at the upper levels; if the server refuses it
    or answers a different count, one query per study (Study Instance UID given) instead.
    """
    assoc = associate(ae_title, port)
    try:
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyDate = date_range
        query.SOPInstanceUID = None
        started = time.perf_counter()
        try:
            found = len(_find(assoc, query))
            note = "one query, StudyDate range only"
        except RuntimeError as exc:
            found, note = -1, f"single query refused ({exc})"
        seconds = time.perf_counter() - started
        if found != expected:
            if found >= 0:
                note = f"single query matched {found}"
            started = time.perf_counter()
            found = 0
            for uid in study_uids:
                query.StudyInstanceUID = uid
                found += len(_find(assoc, query))
            seconds = time.perf_counter() - started
            note += f"; fallback: one query per study ({len(study_uids)} queries)"
    finally:
        assoc.release()
    if found != expected:
        raise RuntimeError(f"IMAGE-level C-FIND counted {found} instances, {expected} stored")
    return Timed(seconds, found, note=note)


def _files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def _retrieve_keys(study_uid: str, series_uid: str) -> list[str]:
    return [
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        f"StudyInstanceUID={study_uid}",
        "-k",
        f"SeriesInstanceUID={series_uid}",
    ]


def _check_received(what: str, done: Completed, received: int, expected: int) -> None:
    if done.returncode != 0 or received != expected:
        raise RuntimeError(
            f"{what}: received {received} of {expected} (exit {done.returncode})\n"
            f"{(done.stdout + done.stderr).strip()[-1500:]}"
        )


def c_get(
    ae_title: str,
    port: int,
    study_uid: str,
    series_uid: str,
    expected: int,
    out: Path,
    timeout: float,
) -> Timed:
    """getscu of one series into a fresh `out` folder; checks every instance arrived."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    args = [dcmtk("getscu"), "-S", "-aet", CALLING_AE, "-aec", ae_title, "-pdu", PDU]
    args += ["-od", str(out), *_retrieve_keys(study_uid, series_uid), LOCALHOST, str(port)]
    done = run(args, timeout=timeout)
    files = _files_in(out)
    _check_received("C-GET", done, len(files), expected)
    return Timed(done.seconds, len(files), sum(f.stat().st_size for f in files))


def store_to(
    ae_title: str, port: int, files: Sequence[str], received_dir: Path, timeout: float
) -> Timed:
    """storescu of `files` straight to the C-MOVE destination (one association, as a C-MOVE
    sends them); checks every instance arrived."""
    for old in _files_in(received_dir):
        old.unlink()
    done = run(_store_args(ae_title, port, [Path(f) for f in files], LOCALHOST, ()), timeout)
    received = _files_in(received_dir)
    _check_received("storescu to storescp", done, len(received), len(files))
    return Timed(done.seconds, len(received), sum(f.stat().st_size for f in received))


def c_move(
    ae_title: str,
    port: int,
    study_uid: str,
    series_uid: str,
    expected: int,
    destination: str,
    received_dir: Path,
    timeout: float,
) -> Timed:
    """movescu of one series to the storescp destination; checks every instance arrived."""
    for old in _files_in(received_dir):
        old.unlink()
    args = [dcmtk("movescu"), "-S", "-aet", CALLING_AE, "-aec", ae_title, "-aem", destination]
    args += [*_retrieve_keys(study_uid, series_uid), LOCALHOST, str(port)]
    done = run(args, timeout=timeout)
    files = _files_in(received_dir)
    _check_received("C-MOVE", done, len(files), expected)
    return Timed(done.seconds, len(files), sum(f.stat().st_size for f in files))
