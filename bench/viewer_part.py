"""The viewer part: OHIF in Chromium on a 30 Mbit/s, 10 ms link; first image, full quality
and frame bytes for a 2k radiograph and a 100-image CT series, on three sites."""

from __future__ import annotations

import os
import statistics
import traceback
from dataclasses import dataclass, field

from bench.settings import BenchSettings
from bench.viewer_browser import Sample, browser, open_study, warm
from bench.viewer_sites import CASES, Site, sites


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass
class ViewerResults:
    """Samples per (site, case), the link used, and what failed."""

    mbit: float
    latency_ms: float
    runs: int
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def median(self, site: str, case: str, attr: str) -> float | None:
        """The median of one figure over the runs."""
        values = [getattr(s, attr) for s in self.samples.get((site, case), [])]
        return statistics.median(values) if values else None


def _link(url: str, study: str) -> str:
    return f"{url}/viewer?StudyInstanceUIDs={study}"


def _site(context: object, site: Site, out: ViewerResults) -> None:
    """Every case of one site, once per run."""
    warm(context, _link(site.url, site.warm))
    for case in CASES:
        for n, study in enumerate(site.studies[case]):
            try:
                got = open_study(context, _link(site.url, study), out.mbit, out.latency_ms)
            except Exception as exc:
                out.errors.append(f"viewer, {site.name}, {case}: {exc}")
                continue
            out.samples.setdefault((site.name, case), []).append(got)
            print(
                f"    {site.name}, {case}, run {n + 1}: first image {got.first_s:.2f} s "
                f"({got.first_bytes:,} B), full {got.full_s:.2f} s "
                f"({got.full_bytes:,} B, {got.requests} requests)",
                flush=True,
            )


def measure(settings: BenchSettings) -> ViewerResults:
    """Every site and case, `BENCH_VIEWER_RUNS` times (default 3); failures are recorded."""
    print("\n== viewer (OHIF in Chromium, throttled)", flush=True)
    out = ViewerResults(
        _env_float("BENCH_VIEWER_MBIT", 30),
        _env_float("BENCH_VIEWER_LATENCY_MS", 10),
        int(_env_float("BENCH_VIEWER_RUNS", 3)),
    )
    try:
        with sites(settings.work_dir / "viewer", out.runs) as opened, browser() as context:
            for site in opened:
                _site(context, site, out)
    except Exception as exc:
        out.errors.append(f"viewer: {exc}\n{traceback.format_exc(limit=4)}")
    return out
