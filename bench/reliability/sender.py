"""Send mutated datasets to a running node by C-STORE and by STOW-RS and count every answer."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.dsutils import split_dataset
from pynetdicom.events import Event

from bench.reliability.mutate import Mutant
from hounsfield.dicomnet.install import install

CALLING_AE = "FUZZER"
VERIFICATION = "1.2.840.10008.1.1"
TIMEOUT = 30.0  # seconds any one answer may take before it counts as a hang
WARNINGS = frozenset({0xB000, 0xB006, 0xB007})
PROCESSING_FAILURE = 0x0110  # what the archive answers for an unexpected exception
# Failure statuses a refusal may carry (PS3.4 B.2.3 and the archive's own).
REFUSALS = frozenset({0x0111, 0x0117, 0x0122, 0x0124, 0x0211})
_CHUNKED = threading.Lock()


def proper_refusal(status: int) -> bool:
    """Whether a C-STORE or STOW-RS failure status is a defined refusal (not an internal
    error): Out of Resources (A7xx), Data Set does not match SOP Class (A9xx), Cannot
    understand (Cxxx), or one of REFUSALS."""
    return status >> 8 in (0xA7, 0xA9) or status >> 12 == 0xC or status in REFUSALS


@dataclass
class Tally:
    """What one sender counted."""

    sent: int = 0
    accepted: int = 0  # success or warning
    refused: Counter[str] = field(default_factory=Counter)  # per status
    unexpected: list[str] = field(default_factory=list)  # internal errors, malformed answers
    no_answer: int = 0  # aborts, closed connections, timeouts: none is expected
    unsendable: int = 0  # mutants the client itself could not read to send (not sent)
    slowest: float = 0.0  # seconds of the slowest answer
    seconds: float = 0.0
    probes: int = 0
    probe_failures: list[str] = field(default_factory=list)

    def answered(self, seconds: float) -> None:
        """Note how long one answer took."""
        self.slowest = max(self.slowest, seconds)

    def merge(self, other: Tally) -> None:
        """Add another tally's counts to this one (seconds: the longer of the two)."""
        self.sent += other.sent
        self.accepted += other.accepted
        self.refused.update(other.refused)
        self.unexpected += other.unexpected
        self.no_answer += other.no_answer
        self.unsendable += other.unsendable
        self.slowest = max(self.slowest, other.slowest)
        self.seconds = max(self.seconds, other.seconds)
        self.probes += other.probes
        self.probe_failures += other.probe_failures


@dataclass(frozen=True)
class Target:
    """Where the node under test answers."""

    host: str
    dimse_port: int
    http_port: int
    ae_title: str = "HOUNSFIELD"
    dicomweb_path: str = "/dicomweb"

    @property
    def http_base(self) -> str:
        """The node's HTTP root."""
        return f"http://{self.host}:{self.http_port}"


def _ae(contexts: Iterable[tuple[str, str]]) -> AE:
    ae = AE(CALLING_AE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    ae.connection_timeout = 10
    for sop_class, syntax in sorted(set(contexts)):
        ae.add_requested_context(sop_class, syntax)
    return ae


def _nodelay(event: Event) -> None:
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _associate(target: Target, contexts: Iterable[tuple[str, str]]) -> Association:
    """An association with the node (TCP_NODELAY set, as every peer of the archive does)."""
    return _ae(contexts).associate(
        target.host,
        target.dimse_port,
        ae_title=target.ae_title,
        evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)],
    )


def probe(target: Target, tally: Tally, client: httpx.Client) -> None:
    """C-ECHO on a new association and GET /health: the node still serves everyone."""
    tally.probes += 1
    assoc = _associate(target, [(VERIFICATION, "1.2.840.10008.1.2")])
    try:
        status = assoc.send_c_echo() if assoc.is_established else Dataset()
    finally:
        if assoc.is_established:
            assoc.release()
    if status.get("Status") != 0x0000:
        tally.probe_failures.append(f"C-ECHO answered {status.get('Status')!r}")
    try:
        code = client.get(target.http_base + "/health", timeout=TIMEOUT).status_code
    except httpx.HTTPError as exc:
        tally.probe_failures.append(f"/health: {type(exc).__name__}")
        return
    if code != 200:
        tally.probe_failures.append(f"/health answered {code}")


def _batches(mutants: Iterable[Mutant], size: int) -> Iterator[list[Mutant]]:
    it = iter(mutants)
    while batch := list(islice(it, size)):
        yield batch


def send_cstore(
    target: Target,
    mutants: Iterable[Mutant],
    folder: Path,
    per_association: int = 100,
    associations: int = 1,
) -> Tally:
    """Send each mutant's dataset by C-STORE (the bytes as they are, under the source's SOP
    class, SOP instance and transfer syntax), `per_association` to an association and
    `associations` associations at a time, with a probe after each association.

    The sender runs with the archive's pynetdicom fixes (`hounsfield.dicomnet.install`):
    pynetdicom 3.0's own reactor may take a response meant for the thread that sent the
    request, which showed as C-STOREs answered by the node but never seen by this sender
    (3 of 20,000 without the fixes, 0 of 20,000 with them, same node and mutants)."""
    install()
    folder.mkdir(parents=True, exist_ok=True)
    batches = _batches(mutants, per_association)
    taking = threading.Lock()
    tallies = [Tally() for _ in range(associations)]
    started = time.monotonic()

    def work(tally: Tally) -> None:
        path = folder / f"cstore-{uuid.uuid4().hex}.dcm"
        with httpx.Client() as client:
            try:
                while True:
                    with taking:
                        batch = next(batches, None)
                    if batch is None:
                        return
                    _one_association(target, batch, path, tally)
                    probe(target, tally, client)
            finally:
                path.unlink(missing_ok=True)

    with _CHUNKED:
        chunked = _config.STORE_SEND_CHUNKED_DATASET
        _config.STORE_SEND_CHUNKED_DATASET = True  # send the file's bytes, never re-encode
        try:
            workers = [threading.Thread(target=work, args=(t,)) for t in tallies]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        finally:
            _config.STORE_SEND_CHUNKED_DATASET = chunked
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    total.seconds = time.monotonic() - started
    return total


def _one_association(target: Target, batch: list[Mutant], path: Path, tally: Tally) -> None:
    pairs = [(m.source.sop_class, m.source.transfer_syntax) for m in batch]
    assoc: Association | None = None
    for mutant in batch:
        if assoc is None or not assoc.is_established:
            assoc = _associate(target, pairs)
            if not assoc.is_established:
                tally.sent += 1
                tally.no_answer += 1
                tally.unexpected.append(f"association refused or aborted ({mutant.kind})")
                continue
        path.write_bytes(mutant.source.meta + mutant.dataset)  # the File Meta names the object
        try:
            split_dataset(path)  # what pynetdicom reads first to send a file
        except Exception:  # e.g. the first element cut inside its header: nothing goes out
            tally.unsendable += 1
            continue
        tally.sent += 1
        began = time.monotonic()
        try:
            answer = assoc.send_c_store(path)
        except (RuntimeError, ValueError) as exc:  # the association went away meanwhile
            answer, note = Dataset(), f"{type(exc).__name__}: {exc}"
        else:
            note = "no status"
        tally.answered(time.monotonic() - began)
        _count_dimse(answer, mutant, note, tally)
    if assoc is not None and assoc.is_established:
        assoc.release()


def _count_dimse(answer: Dataset, mutant: Mutant, note: str, tally: Tally) -> None:
    status = answer.get("Status")
    if status is None:
        tally.no_answer += 1
        tally.unexpected.append(f"{_now()} C-STORE {_name(mutant)}: {note}")
    elif status == 0 or status in WARNINGS:
        tally.accepted += 1
    elif status == PROCESSING_FAILURE or not proper_refusal(status):
        comment = answer.get("ErrorComment", "")
        tally.unexpected.append(f"C-STORE {_name(mutant)}: 0x{status:04X} {comment}")
    else:
        tally.refused[f"0x{status:04X}"] += 1


def _now() -> str:
    """The time of day (UTC), to find an event in the node's log."""
    return time.strftime("%H:%M:%S", time.gmtime())


def _name(mutant: Mutant) -> str:
    return f"{mutant.source.name} {mutant.kind} ({mutant.detail})"


def send_stow(target: Target, mutants: Iterable[Mutant], per_request: int = 10) -> Tally:
    """POST the mutants' Part-10 bodies to /studies, `per_request` parts to a request, with a
    probe every 10 requests."""
    tally = Tally()
    url = target.http_base + target.dicomweb_path + "/studies"
    started = time.monotonic()
    with httpx.Client(timeout=TIMEOUT) as client:
        for n, batch in enumerate(_batches(mutants, per_request)):
            boundary = uuid.uuid4().hex
            body = b"".join(
                b"--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n"
                % (boundary.encode(), m.part10)
                for m in batch
            ) + (b"--%s--\r\n" % boundary.encode())
            headers = {
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Accept": "application/dicom+json",
            }
            tally.sent += len(batch)
            began = time.monotonic()
            try:
                rsp = client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                tally.no_answer += len(batch)
                tally.unexpected.append(f"{_now()} STOW-RS: {type(exc).__name__} {exc}")
                continue
            finally:
                tally.answered(time.monotonic() - began)
            _count_stow(rsp, batch, tally)
            if n % 10 == 9:
                probe(target, tally, client)
        probe(target, tally, client)
    tally.seconds = time.monotonic() - started
    return tally


def _count_stow(rsp: httpx.Response, batch: list[Mutant], tally: Tally) -> None:
    """Every part is either referenced as stored or listed as failed with a proper reason."""
    if rsp.status_code not in (200, 202, 409):
        tally.unexpected.append(f"STOW-RS answered {rsp.status_code}: {rsp.text[:200]}")
        return
    try:
        answer: dict[str, Any] = rsp.json()
        stored = answer.get("00081199", {}).get("Value", [])
        failed = answer.get("00081198", {}).get("Value", [])
        reasons = [int(item["00081197"]["Value"][0]) for item in failed]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        tally.unexpected.append(f"STOW-RS answer unreadable: {type(exc).__name__} {exc}")
        return
    if len(stored) + len(failed) != len(batch):
        tally.unexpected.append(
            f"STOW-RS answered for {len(stored) + len(failed)} of {len(batch)} parts"
        )
    expected = 200 if not failed else 409 if not stored else 202
    if rsp.status_code != expected:
        tally.unexpected.append(f"STOW-RS answered {rsp.status_code}, expected {expected}")
    tally.accepted += len(stored)
    for reason in reasons:
        if reason == PROCESSING_FAILURE or not proper_refusal(reason):
            tally.unexpected.append(f"STOW-RS part failed with 0x{reason:04X}")
        else:
            tally.refused[f"0x{reason:04X}"] += 1
