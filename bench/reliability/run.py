"""`make reliability`: run the fuzz, kill, flood and soak parts and write bench/RELIABILITY.md.

`RELIABILITY_PARTS=kill,flood` runs only those parts (the sections of the others already in
the file are kept); `RELIABILITY_QUICK=1` runs the short forms.
"""

from __future__ import annotations

import importlib
import os
import platform
import re
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.environment import describe

REPORT = Path(__file__).resolve().parents[1] / "RELIABILITY.md"
PARTS = ("fuzz", "kill", "flood", "soak")
MODULES = {name: f"bench.reliability.{name}_part" for name in PARTS}
_SECTION = re.compile(r"<!-- part:(\w+) -->\n(.*?)<!-- /part:\1 -->\n", re.S)


def chosen(value: str | None) -> list[str]:
    """The parts named in `value` (comma-separated; all when empty), in the report's order."""
    if not value or not value.strip():
        return list(PARTS)
    names = {v.strip() for v in value.split(",") if v.strip()}
    unknown = names - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown part(s) {sorted(unknown)}; parts: {', '.join(PARTS)}")
    return [p for p in PARTS if p in names]


def previous_sections(text: str) -> dict[str, str]:
    """The section of each part in an earlier report."""
    return {m.group(1): m.group(2) for m in _SECTION.finditer(text)}


def header(ran: dict[str, str], quick: bool) -> str:
    """What the figures were measured on and how."""
    env = describe()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "# Hounsfield reliability figures",
        "",
        "Written by `make reliability` (`python -m bench.reliability.run`). Each part says what"
        " was run, for how long, and what was counted. `RELIABILITY_PARTS=kill,flood` re-runs"
        " some parts (the others' sections below are kept from their last run, with their"
        " date); `RELIABILITY_QUICK=1` runs the short forms, which `make test` also runs as"
        " tests (tests/system/test_kill_cycles.py, tests/system/test_floods.py,"
        " tests/dicomnet/test_slow_peers.py and the fuzz tests).",
        "",
        "| | |",
        "|---|---|",
        f"| machine | {env.cpus} CPUs ({env.cpu_model}), {env.memory_gb:.1f} GB RAM,"
        f" Linux {env.kernel} |",
        f"| load average when this run started (1/5/15 min) | {load} |",
        f"| software | Hounsfield {env.hounsfield}, Python {platform.python_version()},"
        f" pydicom {env.pydicom}, pynetdicom {env.pynetdicom}, DCMTK {env.dcmtk} |",
        f"| this run | {', '.join(f'{p} ({d})' for p, d in ran.items())};"
        f" {'short forms' if quick else 'long forms'} |",
        "",
        "The machine is shared: other work ran beside these runs, so times are what this"
        " machine gave, not what the code needs; counts of failures do not depend on it.",
        "",
    ]
    return "\n".join(lines)


def _run_part(name: str, quick: bool) -> str:
    started = time.monotonic()
    print(f"== reliability: {name} ({'short' if quick else 'long'})", flush=True)
    try:
        part: Callable[[bool], str] = importlib.import_module(MODULES[name]).run
        body = part(quick)
    except Exception:
        body = f"## {name}\n\nThe part failed to run:\n\n```\n{traceback.format_exc()}```\n"
    took = time.monotonic() - started
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(body, flush=True)
    return f"{body.rstrip()}\n\n_Run {stamp}, {took / 60:.1f} min._\n\n"


def main() -> int:
    """Run the chosen parts and write the report; 1 when a part reported failures."""
    quick = os.environ.get("RELIABILITY_QUICK", "") not in ("", "0")
    parts = chosen(os.environ.get("RELIABILITY_PARTS"))
    fresh = {name: _run_part(name, quick) for name in parts}
    # read only now: a run of other parts may have written the file meanwhile
    sections = previous_sections(REPORT.read_text()) if REPORT.exists() else {}
    sections.update(fresh)
    ran = {name: "run now" for name in parts}
    for name in PARTS:
        if name in sections and name not in ran:
            ran[name] = "kept from an earlier run"
    body = "".join(
        f"<!-- part:{name} -->\n{sections[name]}<!-- /part:{name} -->\n"
        for name in PARTS
        if name in sections
    )
    REPORT.write_text(header(ran, quick) + "\n" + body)
    print(f"wrote {REPORT}", flush=True)
    failed = [n for n in parts if "**failures**" in sections[n] or "failed to run" in sections[n]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
