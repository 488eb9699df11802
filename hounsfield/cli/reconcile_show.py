"""How `hounsfield reconcile` prints a report: its days, differences, notes and summary."""

from __future__ import annotations

from typing import Any

from hounsfield.cli.output import console, rows_table
from hounsfield.sites.reconcile_model import Difference
from hounsfield.sites.reconcile_reports import Report


def show_report(r: Report) -> None:
    """A report as operators read it: the days, the differences, the notes, a summary."""
    console.print(
        f"report #{r.pk}: {r.partition} with {r.peer}, {r.date_from}-{r.date_to}, {r.state}",
        markup=False,
    )
    if r.error:
        console.print(f"error: {r.error}", style="red", markup=False)
    rows_table(
        ("day", "studies here", "instances here", "studies there", "instances there", ""),
        (
            (
                d["date"],
                str(d["local_studies"]),
                str(d["local_instances"]),
                str(d["peer_studies"]),
                str(d["peer_instances"]),
                "" if _same(d) else "differs",
            )
            for d in r.days
        ),
    )
    if r.found:
        console.print("differences found:")
        _differences(r.found)
    if r.passes > 1 and r.left:
        console.print("differences left after the repair:")
        _differences(r.left)
    for note in r.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(
        f"missing here {r.missing} objects (fetched {r.fetched}), held here only {r.extra} "
        f"(pushed {r.pushed}); left {r.missing_left} missing, {r.extra_left} held here only",
        markup=False,
    )


def _same(day: dict[str, Any]) -> bool:
    return bool(
        (day["local_studies"], day["local_instances"])
        == (day["peer_studies"], day["peer_instances"])
    )


def _differences(diffs: list[Difference]) -> None:
    rows_table(
        ("side", "level", "date", "study", "series", "instance", "objects", "repair"),
        (
            (
                "missing here" if d.side == "missing" else "here only",
                d.level,
                d.date,
                d.study,
                d.series,
                d.instance,
                str(d.instances),
                f"{d.repair}: {d.detail}" if d.detail else d.repair,
            )
            for d in diffs
        ),
    )
