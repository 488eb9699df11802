"""Sender processes that C-STORE new instances until told to finish, re-send every instance
not acknowledged, and write down each SOP Instance UID the node acknowledged."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

ROOT_UID = "1.2.826.0.1.3680043.10.1013"
PER_SERIES = 20
PIXELS = 64  # rows and columns of each synthetic CT image (8 KB of pixel data)


@dataclass(frozen=True)
class FeedConfig:
    """What one sender does: its number, the node it sends to and where it writes."""

    index: int
    port: int
    ack_file: Path
    stats_file: Path
    seed: int
    finish_seconds: float = 300.0  # once told to finish: how long to keep re-sending
    host: str = "127.0.0.1"
    ae_title: str = "HOUNSFIELD"


def instances(index: int, seed: int) -> Iterator[Dataset]:
    """An endless series of small CT instances, studies and series of their own per sender."""
    from tests.synth import instance

    rng = random.Random(seed)
    n = 0
    while True:
        study, series = divmod(n // PER_SERIES, 3)
        study_uid = f"{ROOT_UID}.{seed}.{index}.{study + 1}"
        series_uid = f"{study_uid}.{series + 1}"
        ds = instance(
            StudyInstanceUID=study_uid,
            SeriesInstanceUID=series_uid,
            SOPInstanceUID=f"{series_uid}.{n % PER_SERIES + 1}",
            InstanceNumber=n % PER_SERIES + 1,
            SeriesNumber=series + 1,
            PatientID=f"KILL{index}",
            Rows=PIXELS,
            Columns=PIXELS,
            PixelData=rng.randbytes(PIXELS * PIXELS * 2),
        )
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        yield ds
        n += 1


def acknowledged(status: Dataset) -> bool:
    """Success (0x0000) or a warning (0xB...): the node stored the instance."""
    code = int(status.Status) if "Status" in status else -1
    return code == 0 or code >> 12 == 0xB


def feed(conf: FeedConfig, finish: Any) -> None:
    """Send until `finish` is set and then until every instance sent is acknowledged (or
    `finish_seconds` pass); append each acknowledged SOP Instance UID to the ack file."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    ae = AE(f"FEED{conf.index}")
    ae.connection_timeout = 2
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 15
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    source = instances(conf.index, conf.seed)
    pending: list[Dataset] = []  # sent (or about to be) and not acknowledged yet
    stats = {"associations": 0, "refused": 0, "broken": 0, "attempts": 0, "resent": 0}
    finishing_since: float | None = None
    with open(conf.ack_file, "a", buffering=1) as acks:
        while True:
            if finish.is_set() and finishing_since is None:
                finishing_since = time.monotonic()
            if finishing_since is not None and (
                not pending or time.monotonic() - finishing_since > conf.finish_seconds
            ):
                break
            assoc = ae.associate(conf.host, conf.port, ae_title=conf.ae_title)
            if not assoc.is_established:
                stats["refused"] += 1
                time.sleep(0.2)
                continue
            stats["associations"] += 1
            stats["resent"] += len(pending)
            try:
                while assoc.is_established:
                    if not pending:
                        if finish.is_set():
                            break
                        pending.append(next(source))
                    ds = pending[0]
                    stats["attempts"] += 1
                    status = assoc.send_c_store(ds)
                    if not acknowledged(status):
                        stats["broken"] += 1
                        break
                    acks.write(f"{ds.SOPInstanceUID}\n")
                    pending.pop(0)
            except Exception:
                stats["broken"] += 1
            finally:
                if assoc.is_established:
                    assoc.release()
                else:
                    assoc.abort()
    conf.stats_file.write_text(
        " ".join(f"{k}={v}" for k, v in stats.items()) + f" unacknowledged={len(pending)}\n"
    )


class Feeders:
    """Several sender processes (spawned) against one node port."""

    def __init__(self, count: int, port: int, folder: Path, seed: int) -> None:
        ctx = mp.get_context("spawn")
        self.finish = ctx.Event()
        folder.mkdir(parents=True, exist_ok=True)
        self.confs = [
            FeedConfig(i, port, folder / f"acked-{i}.txt", folder / f"stats-{i}.txt", seed)
            for i in range(count)
        ]
        for conf in self.confs:
            conf.ack_file.unlink(missing_ok=True)
            conf.stats_file.unlink(missing_ok=True)
        self.procs = [
            ctx.Process(target=feed, args=(conf, self.finish), daemon=True) for conf in self.confs
        ]

    def start(self) -> None:
        """Start every sender."""
        for proc in self.procs:
            proc.start()

    def finish_and_wait(self, timeout: float) -> bool:
        """Tell them to finish; True when all ended within `timeout` seconds."""
        self.finish.set()
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
        ended = all(not p.is_alive() for p in self.procs)
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        return ended

    def acked(self) -> set[str]:
        """Every SOP Instance UID some sender saw acknowledged."""
        out: set[str] = set()
        for conf in self.confs:
            if conf.ack_file.exists():
                out.update(line for line in conf.ack_file.read_text().split() if line)
        return out

    def stats(self) -> dict[str, int]:
        """The senders' counters, summed."""
        total: dict[str, int] = {}
        for conf in self.confs:
            if not conf.stats_file.exists():
                continue
            for pair in conf.stats_file.read_text().split():
                key, value = pair.split("=")
                total[key] = total.get(key, 0) + int(value)
        return total
