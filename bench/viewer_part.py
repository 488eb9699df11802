"""The viewer part: OHIF in Chromium on a 30 Mbit/s, 10 ms link; first image, full quality
and frame bytes for a 2k radiograph and a 100-image CT series, on three sites."""

from __future__ import annotations

import json
import os
import statistics
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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
    load: list[float] = field(default_factory=list)  # 1-minute load average before, after

    def median(self, site: str, case: str, attr: str) -> float | None:
        """The median of one figure over the runs (`marks.app`: a milestone)."""
        values = []
        for sample in self.samples.get((site, case), []):
            value: object = sample
            for name in attr.split("."):
                value = getattr(value, name)
            if value is not None:
                values.append(float(value))  # type: ignore[arg-type]
        return statistics.median(values) if values else None


def _link(url: str, study: str) -> str:
    return f"{url}/viewer?StudyInstanceUIDs={study}"


def _keep(folder: Path, site: Site, case: str, n: int, got: Sample) -> None:
    """One opening's requests, renders, milestones and the server's log as JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{site.name}-{case.split(' (')[0]}-{n + 1}".replace(" ", "-").replace(".", "")
    data = {
        "marks": asdict(got.marks),
        "draws": got.draws,
        "renders": got.renders,
        "console": got.console,
        "requests": got.rows,
        "server": site.log.since(got.started),
    }
    (folder / f"{name}.json").write_text(json.dumps(data, indent=1))


def _answer_time(site: Site, got: Sample) -> float | None:
    """Seconds from the server getting the first request for the shown frame to the start of
    its answer (its status line and headers)."""
    path = urlsplit(got.shown).path
    for entry in site.log.since(got.started):
        if entry["path"].split("?", 1)[0] == path and entry["head"] is not None:
            return (entry["head"] - entry["received"]) / 1000
    return None


def _open(context: object, site: Site, case: str, n: int, out: ViewerResults, folder: Path) -> None:
    """One opening of one case at one site, recorded in `out`."""
    study = site.studies[case][n]
    try:
        got = open_study(context, _link(site.url, study), out.mbit, out.latency_ms)
    except Exception as exc:
        out.errors.append(f"viewer, {site.name}, {case}: {exc}")
        return
    got.server_s = _answer_time(site, got)
    got.load = os.getloadavg()[0]
    out.samples.setdefault((site.name, case), []).append(got)
    _keep(folder, site, case, n, got)
    m = got.marks
    print(
        f"    {site.name}, {case}, run {n + 1}: first image {got.first_s:.2f} s, "
        f"{got.first_from_request_s:.2f} s after the frame request ({got.first_bytes:,} B), "
        f"full {got.full_s:.2f} s ({got.full_bytes:,} B, {got.requests} requests, "
        f"{got.all_frame_bytes:,} B in all); app {m.app:.2f}, qido {m.qido:.2f}, "
        f"metadata {m.metadata:.2f}, frame request {m.frame_request:.2f}, "
        f"frame bytes {m.frame_bytes:.2f} s, server {got.server_s or 0:.3f} s",
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
    out.load.append(os.getloadavg()[0])
    try:
        folder = settings.work_dir / "viewer" / "timelines"
        with sites(settings.work_dir / "viewer", out.runs) as opened, browser() as context:
            for site in opened:
                warm(context, _link(site.url, site.warm))
            # run by run, each case at every site in turn: a change in the machine's load
            # falls on all three alike
            for n in range(out.runs):
                for case in CASES:
                    for site in opened:
                        _open(context, site, case, n, out, folder)
    except Exception as exc:
        out.errors.append(f"viewer: {exc}\n{traceback.format_exc(limit=4)}")
    out.load.append(os.getloadavg()[0])
    return out
