"""A reconciliation report's differences as CSV: pass 1 as found, then pass 2 left after repair."""

from __future__ import annotations

import csv
import io

from hounsfield.sites.reconcile_reports import Report

CSV_FIELDS = (
    "pass",
    "side",
    "level",
    "study_date",
    "study",
    "series",
    "instance",
    "sop_class",
    "instances",
    "repair",
    "detail",
)


def report_csv(report: Report) -> str:
    """The report's differences as CSV: pass 1 as found (with their repair), then pass 2."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    passes = [(1, report.found)]
    if report.passes > 1:
        passes.append((2, report.left))
    for number, diffs in passes:
        for d in diffs:
            writer.writerow(
                (
                    number,
                    d.side,
                    d.level,
                    d.date,
                    d.study,
                    d.series,
                    d.instance,
                    d.sop_class,
                    d.instances,
                    d.repair,
                    d.detail,
                )
            )
    return out.getvalue()
