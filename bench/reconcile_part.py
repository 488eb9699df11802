"""The reconcile part: its corpus, its measurements, and a failure kept instead of raised."""

from __future__ import annotations

import os
import time
import traceback

from bench import reconcile_corpus
from bench.reconcile_bench import ReconcileResults
from bench.reconcile_bench import measure as measure_rounds
from bench.settings import BenchSettings


def measure(settings: BenchSettings) -> ReconcileResults:
    """The month's corpus (generated or cached), then the rounds; what was measured before
    a failure is kept, with the failure."""
    out = ReconcileResults(load_average=[os.getloadavg()[0]])
    per_day = settings.reconcile_per_day
    print(f"\n== reconcile: one clinic, 31 days x {per_day} studies", flush=True)
    try:
        started = time.perf_counter()
        month, made = reconcile_corpus.ensure(settings.reconcile_corpus_dir, per_day)
        what = "generated" if made else "cached"
        print(
            f"    corpus {what}: {len(month.items):,} instances, {month.studies} studies "
            f"({time.perf_counter() - started:.1f}s)",
            flush=True,
        )
        measure_rounds(settings, out, month)
    except Exception as exc:
        print(f"    FAILED: {str(exc).splitlines()[0]}", flush=True)
        out.errors.append(f"reconcile: {exc}\n{traceback.format_exc(limit=4)}")
    out.load_average.append(os.getloadavg()[0])
    return out
