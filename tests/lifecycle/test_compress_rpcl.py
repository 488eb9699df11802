"""HTJ2K Lossless RPCL by hand (the compress command), from another lossless syntax, and by rule
through the queue: pixel-exact, indexed as 1.2.840.10008.1.2.4.202."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import typer
from pydicom import dcmread
from sqlalchemy import select
from typer.testing import CliRunner

from hounsfield.archive.context import Archive
from hounsfield.cli import output
from hounsfield.cli.compress import compress
from hounsfield.db import engine as db
from hounsfield.db.tables import file, instance
from hounsfield.lifecycle.compress import compress_study_uid
from hounsfield.rules.model import Rule
from hounsfield.rules.saved import save_rule
from hounsfield.scheduled.scheduler import ensure_services, run_service
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from tests.conftest import make_archive, make_settings
from tests.storage_helpers import store_study

RPCL = "1.2.840.10008.1.2.4.202"
NAMES = ["CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "SC_rgb.dcm", "RG1_UNCR.dcm"]


def _stored(archive: Archive) -> dict[str, tuple[str, Path]]:
    with db.read(archive.engine) as conn:
        rows = conn.execute(
            select(instance.c.sop_iuid, file.c.transfer_syntax, file.c.path).join(
                file, file.c.instance_pk == instance.c.pk
            )
        ).all()
    root = archive.settings.storage_dir.resolve()
    return {sop: (syntax, root / rel) for sop, syntax, rel in rows}


def _pixels(archive: Archive) -> dict[str, np.ndarray]:
    return {sop: dcmread(path).pixel_array for sop, (_s, path) in _stored(archive).items()}


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(compress)
    return app


def test_compress_command_writes_rpcl_pixel_exact(archive: Archive) -> None:
    stored = store_study(archive, "by-hand", [*NAMES, "rtdose.dcm"])
    before = _pixels(archive)
    output.use_settings(archive.settings)
    study = stored[0].study
    done = CliRunner().invoke(_cli(), [study, "--syntax", "htj2k-lossless-rpcl", "--json"])
    assert done.exit_code == 0, done.output
    (report,) = json.loads(done.output)
    assert report["compressed"] == len(NAMES) and report["skipped"] == 1  # 32-bit dose stays
    assert report["bytes_after"] < report["bytes_before"]
    after = _stored(archive)
    for sop, (syntax, path) in after.items():
        ds = dcmread(path)
        assert np.array_equal(ds.pixel_array, before[sop])
        if ds.Modality != "RTDOSE":
            assert syntax == RPCL == ds.file_meta.TransferSyntaxUID
            assert path.name.endswith(".rpcl.dcm")
    again = CliRunner().invoke(_cli(), [study, "--syntax", "htj2k-lossless-rpcl"])
    assert again.exit_code == 0 and "already compressed" in again.output
    wrong = CliRunner().invoke(_cli(), [study, "--syntax", "htj2k-rpcl"])
    assert wrong.exit_code == 2 and "unknown compression" in wrong.output
    missing = CliRunner().invoke(_cli(), ["1.2.3.4"])
    assert missing.exit_code == 2 and "no study" in missing.output


def test_from_htj2k_to_rpcl_and_leftovers(archive: Archive) -> None:
    stored = store_study(archive, "twice", ["CT_small.dcm", "SC_rgb.dcm"])
    before = _pixels(archive)
    study = stored[0].study
    assert compress_study_uid(archive, study, "htj2k-lossless").compressed == 2
    htj2k = {sop: path for sop, (_s, path) in _stored(archive).items()}
    assert compress_study_uid(archive, study, "htj2k-lossless-rpcl").compressed == 2
    for sop, (syntax, path) in _stored(archive).items():
        assert syntax == RPCL and np.array_equal(dcmread(path).pixel_array, before[sop])
        assert not htj2k[sop].exists()
    # A crash between commit and unlink leaves the predecessor beside: the next run removes it.
    sop, (_s, path) = next(iter(_stored(archive).items()))
    shutil.copy(path, htj2k[sop])
    report = compress_study_uid(archive, study, "htj2k-lossless-rpcl")
    assert report.reasons == {"already compressed": 2} and not htj2k[sop].exists()


def test_rule_compresses_to_rpcl_through_the_queue(tmp_path: Path, database_url: str) -> None:
    archive = make_archive(
        make_settings(tmp_path, database_url, study_settle_seconds=0, queue_processes=1)
    )
    try:
        rule = Rule(
            "rpcl",
            "lossless-compress",
            is_default=True,
            params={"syntax": "htj2k-lossless-rpcl"},
        )
        save_rule(archive.engine, rule)
        store_study(archive, "by-rule", ["MR_small.dcm"])
        before = _pixels(archive)
        worker = Worker(archive, threads=1)
        assert worker.run_until_idle() == 1
        ensure_services(archive)
        queued = run_service(archive, "lossless-compress", force=True)
        assert queued == "queued 1 studies for lossless-compress"
        assert worker.run_until_idle() == 1
        (item,) = admin.list_items(archive.engine, kind="compress-study")
        assert item.status == "completed" and (item.result or "").startswith("compressed 1"), item
        ((sop, (syntax, path)),) = _stored(archive).items()
        assert syntax == RPCL and np.array_equal(dcmread(path).pixel_array, before[sop])
    finally:
        archive.close()
