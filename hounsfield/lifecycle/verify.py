"""Storage verification: re-read files, check size and SHA-256, repair bad ones from a copy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, func, select, update

from hounsfield.alerts import raise_alert
from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import file, filesystem, instance, series, study
from hounsfield.errors import NotFound
from hounsfield.lifecycle.repair import State, restore, state_of
from hounsfield.storage.atomic import remove_quietly
from hounsfield.uids import check_uid

log = logging.getLogger(__name__)
BATCH = 500
Progress = Callable[[int, int], None]  # (files checked so far, files in scope)


@dataclass
class VerifyReport:
    """What one verification found and did."""

    checked: int = 0
    good: int = 0
    bad: int = 0  # wrong size or checksum, or unreadable
    missing: int = 0
    repaired: int = 0
    unrepairable: int = 0
    unreachable: int = 0  # not checked: their filesystem's folder cannot be reached
    problems: list[str] = field(default_factory=list)  # one line per bad or missing file
    unreachable_filesystems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"checked {self.checked}: {self.good} good, {self.bad} bad, {self.missing} missing, "
            f"{self.repaired} repaired, {self.unrepairable} unrepairable"
            + (f", {self.unreachable} on unreachable filesystems" if self.unreachable else "")
        )


@dataclass(frozen=True)
class _Row:
    pk: int
    instance_pk: int
    filesystem_pk: int
    root: Path
    path: str
    size: int
    checksum: str
    sop: str

    @property
    def file(self) -> Path:
        return self.root / self.path


_COLUMNS = (
    file.c.pk,
    file.c.instance_pk,
    file.c.filesystem_pk,
    filesystem.c.path,
    file.c.path,
    file.c.size,
    file.c.checksum,
    instance.c.sop_iuid,
)


def verify_storage(
    archive: Archive,
    *,
    study_uid: str | None = None,
    filesystem_path: str | Path | None = None,
    partition: str | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify, and repair where possible, every file of a study (in `partition`, default the
    node's) and/or on a filesystem; every file when neither is given. The operator's action,
    shared by `hounsfield verify` and `POST /admin/verify`."""
    conds: list[ColumnElement[bool]] = []
    if study_uid is not None:
        part = archive.resolve(partition)
        check_uid(study_uid, "StudyInstanceUID")
        conds += [study.c.study_iuid == study_uid, study.c.partition_pk == part.pk]
    if filesystem_path is not None:
        conds.append(filesystem.c.pk == _filesystem_pk(archive, filesystem_path))
    with db.read(archive.engine) as conn:
        total = conn.scalar(_select(func.count(file.c.pk)).where(*conds)) or 0
    if study_uid is not None and not total:
        raise NotFound(f"nothing stored under {study_uid}")
    return _walk(archive, conds, int(total), progress)


def verify_range(archive: Archive, fs_pk: int, after: int, through: int) -> VerifyReport:
    """Verify the files of one filesystem whose row pk is in (after, through] (a work item's
    share of the `storage-verification` service)."""
    conds = [file.c.filesystem_pk == fs_pk, file.c.pk > after, file.c.pk <= through]
    return _walk(archive, conds, None, None)


def _filesystem_pk(archive: Archive, path: str | Path) -> int:
    text = str(Path(path).resolve())
    with db.read(archive.engine) as conn:
        pk = conn.scalar(select(filesystem.c.pk).where(filesystem.c.path == text))
    if pk is None:
        raise NotFound(f"no filesystem at {text}")
    return int(pk)


def _select(*columns: Any) -> Any:
    return (
        select(*columns)
        .select_from(file)
        .join(filesystem, filesystem.c.pk == file.c.filesystem_pk)
        .join(instance, instance.c.pk == file.c.instance_pk)
        .join(series, series.c.pk == instance.c.series_pk)
        .join(study, study.c.pk == series.c.study_pk)
    )


def _walk(
    archive: Archive,
    conds: list[ColumnElement[bool]],
    total: int | None,
    progress: Progress | None,
) -> VerifyReport:
    """Verify the selected files in batches of row pks (never the whole selection in memory)."""
    report = VerifyReport()
    after = 0
    while True:
        with db.read(archive.engine) as conn:
            rows = [
                _Row(r[0], r[1], r[2], Path(r[3]), r[4], r[5], r[6], r[7])
                for r in conn.execute(
                    _select(*_COLUMNS)
                    .where(*conds, file.c.pk > after)
                    .order_by(file.c.pk)
                    .limit(BATCH)
                ).all()
            ]
        if not rows:
            break
        _verify_batch(archive, rows, report)
        after = rows[-1].pk
        if progress is not None:
            progress(report.checked + report.unreachable, total or 0)
    log.info("storage verification: %s", report)
    return report


def _verify_batch(archive: Archive, rows: list[_Row], report: VerifyReport) -> None:
    reachable = {root: root.is_dir() for root in {r.root for r in rows}}
    good: list[int] = []
    for row in rows:
        if not reachable[row.root]:
            report.unreachable += 1
            continue
        report.checked += 1
        found = state_of(row.file, row.size, row.checksum)
        if found == "good":
            report.good += 1
            good.append(row.pk)
            continue
        report.bad += found == "bad"
        report.missing += found == "missing"
        _repair(archive, row, found, report)
    for root, ok in reachable.items():
        if not ok and str(root) not in report.unreachable_filesystems:
            report.unreachable_filesystems.append(str(root))
            raise_alert(
                archive.engine, "error", "storage", str(root), "verification cannot reach it"
            )
    _mark_verified(archive, good)


def _mark_verified(archive: Archive, pks: list[int]) -> None:
    if pks:
        with db.write(archive.engine) as conn:
            conn.execute(
                update(file).where(file.c.pk.in_(pks)).values(verified_at=datetime.now(UTC))
            )


def _repair(archive: Archive, row: _Row, found: State, report: VerifyReport) -> None:
    """Copy a good copy of the object over the bad or missing file (atomically, verified),
    then mark it verified; raise an alert either way."""
    what = f"{found} file of SOP Instance {row.sop}"
    source = restore(
        archive, row.file, row.pk, row.instance_pk, row.filesystem_pk, row.size, row.checksum
    )
    if source is None:
        report.unrepairable += 1
        report.problems.append(f"{row.file}: {found}, unrepairable")
        raise_alert(archive.engine, "error", "storage", str(row.file), f"{what}: no good copy")
        return
    report.repaired += 1
    if not _still_indexed(archive, row):
        remove_quietly(row.file)  # replaced or removed meanwhile: nothing names it any more
        report.problems.append(f"{row.file}: {found}, replaced meanwhile")
        return
    report.problems.append(f"{row.file}: {found}, repaired from {source}")
    raise_alert(
        archive.engine, "warning", "storage", str(row.file), f"{what}: repaired from {source}"
    )


def _still_indexed(archive: Archive, row: _Row) -> bool:
    """Mark a repaired file verified if its row still names it; False when it does not."""
    with db.write(archive.engine) as conn:
        return bool(
            conn.execute(
                update(file)
                .where(file.c.pk == row.pk, file.c.path == row.path)
                .values(verified_at=datetime.now(UTC))
            ).rowcount
        )
