"""The forward part: forwarding over loopback against storescu, then over a simulated link."""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field

from bench.forward_bench import LoopbackResults, measure_loopback
from bench.link_bench import LinkResults, measure_link
from bench.settings import BenchSettings


@dataclass
class ForwardResults:
    """What the forward part measured (None: that half failed before measuring)."""

    loopback: LoopbackResults | None = None
    link: LinkResults | None = None
    failures: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average, before and after

    @property
    def errors(self) -> list[str]:
        """Every failure, first line first."""
        loop = self.loopback.errors if self.loopback else []
        return self.failures + loop + (self.link.errors if self.link else [])


def measure(settings: BenchSettings) -> ForwardResults:
    """Both halves; a failure of one is recorded and the other still runs."""
    out = ForwardResults(load=[os.getloadavg()[0]])
    try:
        out.loopback = measure_loopback(settings)
    except Exception as exc:
        print(f"    FAILED: {str(exc).splitlines()[0]}", flush=True)
        out.failures.append(f"forward, loopback: {exc}\n{traceback.format_exc(limit=4)}")
    out.link = measure_link(settings)
    out.load.append(os.getloadavg()[0])
    return out
