"""Run `hounsfield ARGS...` in this process, timing the reconciliation's passes and fetch."""

# python -m bench.reconcile_timer PHASES_JSON reconcile PARTITION --with PEER ...
#
# The same typer app as the `hounsfield` entry point, with the same arguments; the functions
# `hounsfield.sites.reconcile` calls for each comparison pass and for the fetch are wrapped
# with a clock (and the peer's C-FINDs counted). PHASES_JSON gets each phase's name, start
# (seconds since this module was loaded) and duration, the C-FIND count and the total.

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOADED = time.perf_counter()
PHASES: list[dict[str, Any]] = []
FINDS = [0]


def _timed(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            ended = time.perf_counter()
            PHASES.append({"phase": name, "at": started - LOADED, "seconds": ended - started})

    return timed


def _counted(call: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        FINDS[0] += 1
        return call(*args, **kwargs)

    return counted


def main() -> None:
    """Wrap, run the command, write the phases (also when it exits non-zero)."""
    from hounsfield.cli import app
    from hounsfield.sites import reconcile, reconcile_fetch, reconcile_peer

    reconcile.compare = _timed("compare", reconcile.compare)  # type: ignore[attr-defined]
    reconcile.fetch = _timed("fetch", reconcile.fetch)  # type: ignore[attr-defined]
    reconcile_fetch._get = _timed("fetch: C-GET", reconcile_fetch._get)
    reconcile_fetch._move = _timed("fetch: C-MOVE", reconcile_fetch._move)
    reconcile_peer.PeerSide._ask = _counted(reconcile_peer.PeerSide._ask)  # type: ignore[method-assign]
    out = Path(sys.argv[1])
    try:
        app(sys.argv[2:], prog_name="hounsfield")
    finally:
        total = time.perf_counter() - LOADED
        out.write_text(json.dumps({"phases": PHASES, "finds": FINDS[0], "in_process": total}))


if __name__ == "__main__":
    main()
