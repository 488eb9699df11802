"""What every measurement step shares: the figures collected, the context, timing helpers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench.corpus import Corpus
from bench.servers import Server
from bench.settings import BenchSettings

T = TypeVar("T")


@dataclass
class Measurements:
    """Every figure measured on one server, by metric key, plus remarks and failures."""

    server: str
    values: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # words that go with some values
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rounds: dict[str, list[float]] = field(default_factory=dict)  # each round's value, by key


def merge(rounds: Sequence[Measurements]) -> Measurements:
    """One server's rounds as one set of figures: the median of each metric over the rounds
    that measured it, every round's value kept beside it; remarks and failures by round."""
    first = rounds[0]
    out = Measurements(first.server, labels=dict(first.labels))
    for m in rounds:
        for key, value in m.values.items():
            out.rounds.setdefault(key, []).append(value)
    out.values = {key: statistics.median(values) for key, values in out.rounds.items()}
    several = len(rounds) > 1
    for i, m in enumerate(rounds, 1):
        prefix = f"round {i}: " if several else ""
        out.notes += [prefix + note for note in m.notes]
        out.errors += [prefix + error for error in m.errors]
    return out


@dataclass(frozen=True)
class Context:
    """What every step needs."""

    server: Server
    corpus: Corpus
    settings: BenchSettings
    storescp_dir: Path
    m: Measurements
    stow: Corpus | None = None  # the separate corpus sent by STOW-RS / POST /instances
    storescp_port: int = 0  # the C-MOVE destination's port (0: not running)


def timed(name: str, action: Callable[[], T]) -> T:
    """Run `action`, printing its name and wall time."""
    print(f"    {name} ...", end="", flush=True)
    started = time.perf_counter()
    result = action()
    print(f" {time.perf_counter() - started:.1f}s", flush=True)
    return result


def median_by(name: str, repeats: int, action: Callable[[], T], seconds: Callable[[T], float]) -> T:
    """Run `action` `repeats` times and keep the run with the median wall time."""
    runs = [timed(f"{name} ({i + 1}/{repeats})", action) for i in range(repeats)]
    return sorted(runs, key=seconds)[len(runs) // 2]
