"""Filesystems, tiers and watermarks: management, write selection, the watermark check."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import alert, file, instance, series, study, work_item
from hounsfield.errors import InvalidDataset, StorageFull
from hounsfield.lifecycle.migrate import copy_study
from hounsfield.rules.model import Rule, parse_condition
from hounsfield.rules.saved import save_rule
from hounsfield.scheduled.scheduler import ensure_services, run_service
from hounsfield.storage.tiers import (
    add_filesystem,
    list_filesystems,
    remove_filesystem,
    set_filesystem,
)
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from tests.conftest import make_archive, make_settings
from tests.storage_helpers import store_variant


def _usage(archive: Archive, path: Path):  # type: ignore[no-untyped-def]
    return next(u for u in list_filesystems(archive.engine) if u.path == str(path.resolve()))


def test_filesystem_add_set_remove(archive: Archive, tmp_path: Path) -> None:
    assert add_filesystem(archive.engine, tmp_path / "t2", tier=2, capacity_bytes=10_000)
    assert not add_filesystem(archive.engine, tmp_path / "t2", low_watermark=50)
    u = _usage(archive, tmp_path / "t2")
    assert (u.tier, u.capacity_bytes, u.low_watermark, u.high_watermark) == (2, 10_000, 50, 90)
    assert u.percent == 0.0 and not u.above_high
    with pytest.raises(InvalidDataset):
        set_filesystem(archive.engine, tmp_path / "t2", low_watermark=95)
    with pytest.raises(InvalidDataset):
        add_filesystem(archive.engine, tmp_path / "t4", tier=4)
    assert set_filesystem(archive.engine, tmp_path / "t2", read_only=True).read_only
    remove_filesystem(archive.engine, tmp_path / "t2")
    with pytest.raises(InvalidDataset, match="still holds"):
        store_variant(archive, "MR_small.dcm", 1)
        remove_filesystem(archive.engine, archive.settings.storage_dir)


def test_writes_stop_at_the_high_watermark_with_an_alert(archive: Archive) -> None:
    first = store_variant(archive, "CT_small.dcm", 1)
    set_filesystem(
        archive.engine, archive.settings.storage_dir, capacity_bytes=first.size * 100 // 60
    )
    archive.filesystems.invalidate()
    with pytest.raises(StorageFull):
        store_variant(archive, "CT_small.dcm", 2)  # would take it to 120% of 60%... above 90%
    with db.read(archive.engine) as conn:
        assert conn.scalar(select(func.count()).select_from(alert)) == 1


def test_filesystem_cli(tmp_path: Path, database_url: str) -> None:
    from hounsfield.cli import app

    settings = make_settings(tmp_path, database_url)
    make_archive(settings).close()
    env = {
        "HOUNSFIELD_DATA_DIR": str(settings.data_dir),
        "HOUNSFIELD_DATABASE_URL": database_url,
        "COLUMNS": "250",
    }
    runner = CliRunner()
    t2 = tmp_path / "tier2"
    out = runner.invoke(
        app, ["filesystem", "add", str(t2), "--tier", "2", "--capacity", "1MiB"], env=env
    )
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["filesystem", "set", str(t2), "--high", "70", "--low", "60"], env=env)
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["filesystem", "list"], env=env)
    assert out.exit_code == 0 and "tier2" in out.output and "70" in out.output
    out = runner.invoke(app, ["status"], env=env)
    assert out.exit_code == 0 and "0.0%" in out.output and "60/70%" in out.output
    out = runner.invoke(app, ["filesystem", "set", str(t2), "--low", "80"], env=env)
    assert out.exit_code == 2 and "low watermark" in out.output
    out = runner.invoke(app, ["filesystem", "remove", str(t2)], env=env)
    assert out.exit_code == 0, out.output
    assert "tier2" not in runner.invoke(app, ["filesystem", "list"], env=env).output


def _sizes(archive: Archive, fs_pk: int) -> dict[str, int]:
    with db.read(archive.engine) as conn:
        rows = conn.execute(
            select(study.c.study_iuid, func.sum(file.c.size))
            .join(series, series.c.study_pk == study.c.pk)
            .join(instance, instance.c.series_pk == series.c.pk)
            .join(file, file.c.instance_pk == instance.c.pk)
            .where(file.c.filesystem_pk == fs_pk)
            .group_by(study.c.study_iuid)
        ).all()
    return {uid: int(n) for uid, n in rows}


def test_watermark_check_migrates_then_deletes_then_purges(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, study_settle_seconds=0)
    archive = make_archive(settings)
    try:
        add_filesystem(archive.engine, tmp_path / "tier2", tier=2, capacity_bytes=10_000_000)
        add_filesystem(archive.engine, tmp_path / "tier3", tier=3, capacity_bytes=10_000_000)
        for name, rule in (
            (
                "ct-to-tier2",
                Rule("ct-to-tier2", "tier1-retention", (parse_condition("Modality=CT"),)),
            ),
            ("mr-delete", Rule("mr-delete", "delete", (parse_condition("Modality=MR"),))),
            ("online", Rule("online", "online-retention", is_default=True)),
            (
                "keep-vip",
                Rule(
                    "keep-vip", "online-retention", (parse_condition("CallingAE=VIP"),), exempt=True
                ),
            ),
        ):
            save_rule(archive.engine, rule)
            assert rule.name == name
        ct = [store_variant(archive, "CT_small.dcm", n) for n in range(3)]
        mr = [store_variant(archive, "MR_small.dcm", n) for n in range(3)]
        copied = [store_variant(archive, "SC_rgb.dcm", n) for n in range(2)]
        vip = store_variant(archive, "SC_rgb.dcm", 10, calling_ae="VIP")
        kept = [store_variant(archive, "SC_rgb.dcm", n) for n in range(20, 22)]
        assert Worker(archive, threads=2, processes=0).run_until_idle() == 11  # process study
        assert admin.counts(archive.engine) == {"completed": 11}
        tiers = {u.tier: u for u in list_filesystems(archive.engine)}
        t1, t2, t3 = tiers[1], tiers[2], tiers[3]
        with db.read(archive.engine) as conn:
            study_pks = dict(conn.execute(select(study.c.study_iuid, study.c.pk)).all())
        for s in (*copied, vip):
            copy_study(archive, study_pks[s.study], t1.pk, t3.pk)
        sizes = _sizes(archive, t1.pk)
        total = sum(sizes.values())
        keep_bytes = sum(sizes[s.study] for s in (vip, *kept))
        # Capacity and marks so that only migrating, deleting and purging all allowed gets there.
        floor = keep_bytes + min(sizes[s.study] for s in copied) // 2
        low = floor * 95 // total
        capacity = floor * 100 // low
        high = int(total * 100 / capacity) - 1
        assert low < high < 100
        set_filesystem(
            archive.engine, t1.path, capacity_bytes=capacity, low_watermark=low, high_watermark=high
        )
        ensure_services(archive)
        first = run_service(archive, "filesystem-watermark-check", force=True)
        assert first is not None and "migrate-study 3" in first and "delete-study 3" in first
        assert "purge-study 2" in first
        again = run_service(archive, "filesystem-watermark-check", force=True)
        assert again is not None and "nothing new" in again  # pending items already cover it
        with db.read(archive.engine) as conn:
            assert (
                conn.scalar(
                    select(func.count())
                    .select_from(work_item)
                    .where(work_item.c.status == "pending")
                )
                == 8
            )
        Worker(archive, threads=2, processes=0).run_until_idle()

        after = _sizes(archive, t1.pk)
        assert set(after) == {s.study for s in (vip, *kept)}
        assert set(_sizes(archive, t2.pk)) == {s.study for s in ct}
        assert set(_sizes(archive, t3.pk)) == {s.study for s in (*copied, vip)}
        usage = _usage(archive, Path(t1.path))
        assert usage.percent is not None and usage.percent <= low
        for s in ct:
            rel = next(iter(Path(t2.path).rglob(f"{s.sop_instance}_*.dcm")))
            assert rel.is_file()
            assert not list(Path(t1.path).rglob(f"{s.sop_instance}_*.dcm"))
        for s in mr:
            assert not list(Path(t1.path).rglob(f"{s.sop_instance}_*.dcm"))
            assert s.study not in study_pks or s.study not in _all_studies(archive)
        assert "below its high watermark" in (
            run_service(archive, "filesystem-watermark-check", force=True) or ""
        )
    finally:
        archive.close()


def _all_studies(archive: Archive) -> set[str]:
    with db.read(archive.engine) as conn:
        return set(conn.scalars(select(study.c.study_iuid)))
