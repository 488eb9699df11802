"""Several processes and nodes storing the same instances at once keep one object per SOP UID."""

from __future__ import annotations

import random
import signal
from collections import Counter
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from hounsfield.settings import Settings
from tests.conftest import make_archive, make_settings
from tests.livenode import Node, cli, node_env
from tests.synth import encode, write_part10
from tests.synth import instance as make_instance
from tests.system.ingest_workers import (
    ACKNOWLEDGED,
    Indexed,
    Payload,
    RoundResult,
    WorkerPool,
    check_archive,
)

STUDIES, SERIES, PER_SERIES = 4, 2, 25  # 200 instances
PROCESSES = 2  # two writers at once make the race; more only queue on two cores
# What each process sends in a round: the same object everywhere ("same"), or an object of its
# own (a different pixel byte, patient name...), so that the duplicate policy decides.
ROUNDS = ["same", "pixel", "same-new", "mixed"]


def _uids() -> list[dict[str, object]]:
    bases: list[dict[str, object]] = []
    for st in range(STUDIES):
        study_uid = f"1.2.826.0.1.3680043.10.999.{random.randrange(10**9)}.{st}"
        for se in range(SERIES):
            series_uid = f"{study_uid}.{se + 1}"
            for i in range(PER_SERIES):
                bases.append(
                    {
                        "StudyInstanceUID": study_uid,
                        "SeriesInstanceUID": series_uid,
                        "SOPInstanceUID": f"{series_uid}.{i + 1}",
                        "InstanceNumber": i + 1,
                        "SeriesNumber": se + 1,
                        "PatientID": f"CONC{st}",
                    }
                )
    return bases


def _variant(base: dict[str, object], kind: str, rnd: int, worker: int) -> dict[str, object]:
    """The attributes of what `worker` sends in round `rnd`."""
    attrs = dict(base)
    if kind == "same":
        return attrs
    if kind == "same-new" or (kind == "mixed" and worker % 2 == 0):
        attrs["InstitutionName"] = f"ROUND {rnd}"
        return attrs
    if kind == "mixed":
        attrs["PatientName"] = f"DOE^W{worker}R{rnd}"
        return attrs
    pixels = bytearray(range(32))
    pixels[0] = 100 + 10 * rnd + worker
    attrs["PixelData"] = bytes(pixels)
    return attrs


def _payloads(
    bases: list[dict[str, object]], kind: str, rnd: int, workers: int, part10: bool
) -> tuple[list[Payload], list[Payload]]:
    """Per worker: what it sends (dataset bytes, or Part-10 bytes), and the dataset bytes."""
    sent: list[Payload] = []
    datasets: list[Payload] = []
    made: dict[str, tuple[bytes, bytes]] = {}  # what several workers send is encoded once
    for w in range(workers):
        one_sent: Payload = []
        one_data: Payload = []
        for base in bases:
            attrs = _variant(base, kind, rnd, w)
            sop = str(attrs["SOPInstanceUID"])
            key = repr(sorted(attrs.items()))
            if key not in made:
                ds = make_instance(**attrs)
                buf = write_part10(ds, BytesIO()) if part10 else None
                made[key] = (encode(ds), buf.getvalue() if isinstance(buf, BytesIO) else b"")
            data, whole = made[key]
            one_data.append((sop, data))
            one_sent.append((sop, whole if part10 else data))
        if kind == "mixed" and w % 2:  # another order: writers meet at other moments
            order = list(range(len(bases)))
            random.Random(w).shuffle(order)
            one_sent = [one_sent[i] for i in order]
            one_data = [one_data[i] for i in order]
        sent.append(one_sent)
        datasets.append(one_data)
    return sent, datasets


def _rounds(
    pool: WorkerPool,
    url: str,
    storage: Path,
    policy: str,
    *,
    part10: bool,
) -> None:
    bases = _uids()
    sops = [str(b["SOPInstanceUID"]) for b in bases]
    previous: dict[str, Indexed] = {}
    for rnd, kind in enumerate(ROUNDS):
        sent, datasets = _payloads(bases, kind, rnd, pool.count, part10)
        results = pool.run(sent)
        errors = {(r.worker, sop): e for r in results for sop, e in r.errors.items()}
        assert not errors, f"round {rnd} ({kind}): {len(errors)} failed, e.g. {_first(errors)}"
        assert all(set(r.outcomes) == set(sops) for r in results)
        indexed, problems = check_archive(url, storage, sops)
        assert not problems, f"round {rnd} ({kind}, {policy}): {problems[:5]} ({len(problems)})"
        offered: dict[str, set[bytes]] = {sop: set() for sop in sops}
        for one in datasets:
            for sop, data in one:
                offered[sop].add(data)
        for sop in sops:
            data = indexed[sop].data
            if rnd == 0:
                assert data in offered[sop], f"{sop}: stored content was never sent"
            elif policy == "keep":
                assert data == previous[sop].data, f"{sop}: kept object changed (round {rnd})"
            else:
                assert data in offered[sop], f"{sop}: not overwritten by this round's (round {rnd})"
        if not part10:
            _check_outcomes(results, rnd, kind, policy, sops)
        previous = indexed


def _check_outcomes(
    results: list[RoundResult], rnd: int, kind: str, policy: str, sops: list[str]
) -> None:
    for sop in sops:
        seen = Counter(r.outcomes[sop] for r in results)
        assert set(seen) <= ACKNOWLEDGED
        if rnd == 0:  # one writer stores it, the others find the identical object
            assert seen == {"stored": 1, "duplicate": len(results) - 1}, (sop, seen)
            continue
        assert "stored" not in seen, (sop, rnd, seen)
        if kind == "same" or policy == "keep":
            assert set(seen) <= {"duplicate", "kept"}, (sop, rnd, seen)
        elif kind == "same-new":  # one replaces it, the others find theirs identical
            assert seen == {"overwritten": 1, "duplicate": len(results) - 1}, (sop, seen)
        else:
            assert seen["overwritten"] >= 1, (sop, rnd, seen)


def _first(errors: dict[tuple[int, str], str]) -> str:
    (worker, sop), error = next(iter(errors.items()))
    return f"worker {worker}, {sop}:\n{error}"


def _values(settings: Settings) -> dict[str, Any]:
    return {
        "data_dir": settings.data_dir,
        "database_url": settings.database_url,
        "dimse_port": 0,
        "http_port": 0,
        "host": "127.0.0.1",
        "storage_reserve_bytes": 0,
        "fsync": True,
        "duplicate_policy": settings.duplicate_policy,
    }


@pytest.mark.parametrize("policy", ["keep", "overwrite"])
def test_processes_storing_the_same_instances_keep_one_object_each(
    tmp_path: Path, database_url: str, policy: str
) -> None:
    settings = make_settings(tmp_path, database_url, duplicate_policy=policy)
    make_archive(settings).close()
    conf = {"mode": "store", "settings": _values(settings)}
    with WorkerPool(PROCESSES, conf) as pool:
        _rounds(pool, database_url, settings.storage_dir, policy, part10=False)


def test_two_nodes_sharing_database_and_storage_keep_one_object_each(
    tmp_path: Path, postgresql_url: str
) -> None:
    data_dir = tmp_path / "shared"
    extra = {"HOUNSFIELD_DIMSE_PROCESSES": "1", "HOUNSFIELD_DUPLICATE_POLICY": "overwrite"}
    envs = [node_env(data_dir, postgresql_url, **extra) for _ in range(2)]
    upgrade = cli(envs[0], "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    nodes: list[Node] = []
    try:
        for n, env in enumerate(envs):
            nodes.append(Node(env, tmp_path / f"node{n}.log"))
        conf = {"mode": "dimse", "ports": [node.dimse_port for node in nodes]}
        with WorkerPool(2, conf) as pool:  # one storing to each node
            _rounds(pool, postgresql_url, data_dir / "storage", "overwrite", part10=True)
    finally:
        for node in nodes:
            node.signal(signal.SIGTERM)
        for node in nodes:
            node.wait()
