"""Worker processes that store the same instances at once, and the checks of what they left."""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from types import TracebackType
from typing import Any

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import create_engine, func, select

from hounsfield.db.tables import file, filesystem, instance, series, study
from hounsfield.storage.atomic import file_checksum
from hounsfield.storage.filemeta import dataset_offset

ACKNOWLEDGED = {"stored", "duplicate", "kept", "overwritten"}
Payload = list[tuple[str, bytes]]  # (SOP Instance UID, bytes) in the order to send them


@dataclass
class RoundResult:
    """What one worker saw in one round: an outcome (or DIMSE status) or an error per SOP."""

    worker: int
    outcomes: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _store_loop(index: int, conf: dict[str, Any], tasks: Any, results: Any, barrier: Any) -> None:
    from hounsfield.archive.context import open_archive
    from hounsfield.archive.store import store
    from hounsfield.settings import Settings

    archive = open_archive(Settings(**conf["settings"]))
    try:
        while (payload := tasks.get()) is not None:
            result = RoundResult(index)
            barrier.wait()
            for sop, data in payload:
                try:
                    done = store(archive, ExplicitVRLittleEndian, data, calling_ae=f"W{index}")
                    result.outcomes[sop] = done.outcome.value
                except Exception:
                    result.errors[sop] = traceback.format_exc(limit=6)
            results.put(result)
    finally:
        archive.close()


def _dimse_loop(index: int, conf: dict[str, Any], tasks: Any, results: Any, barrier: Any) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    from hounsfield.dicomnet.install import install

    install()
    ports: list[int] = conf["ports"]
    port = ports[index % len(ports)]
    ae = AE(f"SCU{index}")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    while (payload := tasks.get()) is not None:
        result = RoundResult(index)
        datasets = [(sop, dcmread(BytesIO(part10))) for sop, part10 in payload]
        barrier.wait()
        assoc = ae.associate("127.0.0.1", port, ae_title="HOUNSFIELD")
        if not assoc.is_established:
            result.errors = {sop: f"no association with port {port}" for sop, _ in datasets}
        else:
            for sop, ds in datasets:
                try:
                    status = assoc.send_c_store(ds)
                    code = int(status.Status) if "Status" in status else -1
                    if code == 0:
                        result.outcomes[sop] = "0x0000"
                    else:
                        result.errors[sop] = f"status {code:#06x}"
                except Exception:
                    result.errors[sop] = traceback.format_exc(limit=6)
            assoc.release()
        results.put(result)


def worker_main(index: int, conf: dict[str, Any], tasks: Any, results: Any, barrier: Any) -> None:
    """A worker process: `store` through its own archive, or C-STORE to a node."""
    try:
        loop = _dimse_loop if conf["mode"] == "dimse" else _store_loop
        loop(index, conf, tasks, results, barrier)
    except Exception:
        barrier.abort()
        results.put(RoundResult(index, errors={"*": traceback.format_exc()}))


class WorkerPool:
    """Several spawned processes that each run one payload per round, all starting together."""

    def __init__(self, count: int, conf: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.count = count
        self.barrier = ctx.Barrier(count)
        self.results = ctx.Queue()
        self.tasks = [ctx.Queue() for _ in range(count)]
        self.procs = [
            ctx.Process(
                target=worker_main,
                args=(i, conf, self.tasks[i], self.results, self.barrier),
                daemon=True,
            )
            for i in range(count)
        ]

    def __enter__(self) -> WorkerPool:
        for proc in self.procs:
            proc.start()
        return self

    def run(self, payloads: Sequence[Payload], timeout: float = 60) -> list[RoundResult]:
        """Give each worker its payload; the results, in worker order."""
        assert len(payloads) == self.count
        for queue, payload in zip(self.tasks, payloads, strict=True):
            queue.put(payload)
        found = [self.results.get(timeout=timeout) for _ in range(self.count)]
        return sorted(found, key=lambda r: r.worker)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for queue in self.tasks:
            queue.put(None)
        for proc in self.procs:
            proc.join(timeout=15)
            if proc.is_alive() and proc.pid is not None:
                proc.kill()
                proc.join(timeout=5)


@dataclass(frozen=True)
class Indexed:
    """The one stored object of a SOP Instance UID: its file and its dataset bytes."""

    path: Path
    data: bytes


def _sqlalchemy_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def check_archive(
    url: str, storage: Path, sops: Sequence[str]
) -> tuple[dict[str, Indexed], list[str]]:
    """Check the one-object-per-SOP invariants for `sops`; the indexed objects and problems."""
    problems: list[str] = []
    engine = create_engine(_sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    instance.c.sop_iuid,
                    instance.c.pk,
                    file.c.pk.label("file_pk"),
                    file.c.path,
                    file.c.checksum,
                    filesystem.c.path.label("root"),
                )
                .select_from(
                    instance.outerjoin(file, file.c.instance_pk == instance.c.pk).outerjoin(
                        filesystem, filesystem.c.pk == file.c.filesystem_pk
                    )
                )
                .where(instance.c.sop_iuid.in_(list(sops)))
            ).all()
            series_counts = conn.execute(
                select(series.c.series_iuid, series.c.num_instances, func.count(instance.c.pk))
                .select_from(series.outerjoin(instance, instance.c.series_pk == series.c.pk))
                .group_by(series.c.pk, series.c.series_iuid, series.c.num_instances)
            ).all()
            study_counts = conn.execute(
                select(study.c.study_iuid, study.c.num_instances, func.count(instance.c.pk))
                .select_from(
                    study.outerjoin(series, series.c.study_pk == study.c.pk).outerjoin(
                        instance, instance.c.series_pk == series.c.pk
                    )
                )
                .group_by(study.c.pk, study.c.study_iuid, study.c.num_instances)
            ).all()
    finally:
        engine.dispose()

    by_sop: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_sop[row.sop_iuid].append(row)
    on_disk = _files_by_sop(storage)
    indexed: dict[str, Indexed] = {}
    for sop in sops:
        found = by_sop.get(sop, [])
        instances = {row.pk for row in found}
        files = {row.file_pk for row in found if row.file_pk is not None}
        if len(instances) != 1 or len(files) != 1:
            problems.append(f"{sop}: {len(instances)} instance rows, {len(files)} file rows")
            continue
        row = found[0]
        path = Path(row.root) / row.path
        if not path.is_file():
            problems.append(f"{sop}: indexed file {path} is missing")
            continue
        if file_checksum(path) != row.checksum:
            problems.append(f"{sop}: checksum of {path} differs from its file row")
        extra = sorted(str(p) for p in on_disk.get(sop, []) if p != path)
        if extra:
            problems.append(f"{sop}: files beside the indexed {path.name}: {extra}")
        content = path.read_bytes()
        indexed[sop] = Indexed(path, content[dataset_offset(str(path)) :])
    for uid, counter, real in [*series_counts, *study_counts]:
        if counter != real:
            problems.append(f"{uid}: num_instances {counter}, real count {real}")
    return indexed, problems


def _files_by_sop(storage: Path) -> dict[str, list[Path]]:
    """Every file under `storage` named after a SOP Instance UID (temporary ones too)."""
    found: dict[str, list[Path]] = defaultdict(list)
    for folder, _dirs, names in os.walk(storage):
        for name in names:
            sop = name.lstrip(".").split("_", 1)[0].removesuffix(".dcm")
            found[sop].append(Path(folder) / name)
    return found
