"""Server rules: conditions, timing, exempt and default rules, the process-study item, the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select
from typer.testing import CliRunner

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import study
from hounsfield.errors import InvalidDataset
from hounsfield.rules.evaluate import StudyFacts, evaluate
from hounsfield.rules.model import Rule, parse_after, parse_condition
from hounsfield.rules.saved import apply_declared, list_rules, outcomes, remove_rule, save_rule
from hounsfield.settings import RuleConfig
from hounsfield.workers.runner import Worker
from hounsfield.workqueue import admin
from tests.conftest import make_archive, make_settings
from tests.storage_helpers import store_variant

RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _facts(*series: dict[str, object], aes: tuple[str, ...] = ("CT1",)) -> StudyFacts:
    datasets = []
    for values in series:
        ds = Dataset()
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        datasets.append(ds)
    return StudyFacts(tuple(datasets), frozenset(aes), "20240101", RECEIVED)


def test_conditions() -> None:
    facts = _facts(
        {"Modality": "CT", "StationName": "CT-EAST-2", "ImageType": ["ORIGINAL", "PRIMARY"]},
        {"Modality": "SR"},
    )
    cases = {
        "Modality=CT": True,
        "Modality=MR": False,
        "Modality=MR|SR": True,
        "StationName~^CT-EAST": True,
        "StationName~WEST": False,
        "ImageType=PRIMARY": True,
        "StationName?": True,
        "BodyPartExamined?": False,
        "!BodyPartExamined": True,
        "!Modality": False,
        "CallingAE=CT1": True,
        "CallingAE=MR1|MR2": False,
    }
    for text, expected in cases.items():
        rule = Rule("r", "delete", (parse_condition(text),))
        assert bool(evaluate([rule], facts)) is expected, text


def test_all_any_exempt_default_and_timing() -> None:
    ct = _facts({"Modality": "CT"})
    mr = _facts({"Modality": "MR"}, aes=("VIP",))
    rules = [
        Rule("vip", "delete", (parse_condition("CallingAE=VIP"),), exempt=True),
        Rule(
            "ct",
            "delete",
            (parse_condition("Modality=CT"), parse_condition("CallingAE=XX")),
            match="any",
            after_seconds=parse_after("3 weeks"),
            time_from="study-date",
        ),
        Rule("everything", "delete", is_default=True, after_seconds=parse_after("1 year")),
        Rule("t1", "tier1-retention", after_seconds=parse_after("10 days"), is_default=True),
    ]
    got = {e.action: e for e in evaluate(rules, ct)}
    assert got["delete"].rule == "ct"
    assert got["delete"].at == datetime(2024, 1, 22, tzinfo=UTC)  # 3 weeks from StudyDate
    assert got["tier1-retention"].at == RECEIVED + timedelta(days=10)  # from receipt
    got = {e.action: e for e in evaluate(rules, mr)}
    assert "delete" not in got  # exempt
    other = _facts({"Modality": "US"}, aes=("US1",))
    assert {e.action: e.rule for e in evaluate(rules, other)}["delete"] == "everything"


def test_invalid_rules_are_refused() -> None:
    with pytest.raises(InvalidDataset):
        parse_condition("Modality")
    with pytest.raises(InvalidDataset):
        parse_condition("Station Name=x")
    with pytest.raises(InvalidDataset):
        parse_after("soon")
    with pytest.raises(InvalidDataset):
        Rule("x", "explode")
    with pytest.raises(InvalidDataset):
        Rule("x", "delete", (parse_condition("Modality=CT"),), is_default=True)
    with pytest.raises(InvalidDataset):
        Rule("x", "lossy-compress")
    with pytest.raises(InvalidDataset):
        parse_condition("StationName~([")
    with pytest.raises(InvalidDataset):
        Rule("x", "lossless-compress", params={"syntax": "jpeg2000"})  # that one is lossy
    assert Rule("x", "lossless-compress", params={"syntax": "htj2k-lossless"})


def test_rules_are_stored_and_declared(archive: Archive) -> None:
    assert save_rule(archive.engine, Rule("a", "delete", (parse_condition("Modality=CT"),)))
    declared = RuleConfig.model_validate(
        {
            "name": "b",
            "action": "tier1-retention",
            "after": "3 weeks",
            "from": "study-date",
            "conditions": [
                {"attribute": "Modality", "op": "one-of", "values": ["CT", "MR"]},
                {"attribute": "BodyPartExamined", "op": "present"},
            ],
        }
    )
    apply_declared(archive.engine, [declared])
    apply_declared(archive.engine, [declared])  # idempotent
    rules = {r.name: r for r in list_rules(archive.engine)}
    assert list(rules) == ["a", "b"]
    assert rules["b"].after_seconds == 21 * 86400 and rules["b"].time_from == "study-date"
    assert [str(c) for c in rules["b"].conditions] == ["Modality=CT|MR", "BodyPartExamined?"]
    remove_rule(archive.engine, "a")
    assert [r.name for r in list_rules(archive.engine)] == ["b"]


def test_arriving_instances_coalesce_into_one_process_study_item(
    tmp_path: Path, database_url: str
) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, study_settle_seconds=0))
    try:
        save_rule(archive.engine, Rule("ct", "tier1-retention", (parse_condition("Modality=CT"),)))
        save_rule(archive.engine, Rule("all", "delete", is_default=True, after_seconds=86400))
        first = store_variant(archive, "CT_small.dcm", 1)
        store_variant(archive, "CT_small.dcm", 1)  # identical again: nothing new
        mr = store_variant(archive, "MR_small.dcm", 1)
        items = admin.list_items(archive.engine)
        assert sorted(i.kind for i in items) == ["process-study", "process-study"]
        assert all(i.status == "idle" for i in items)
        assert Worker(archive, threads=1, processes=0).run_until_idle() == 2
        with db.read(archive.engine) as conn:
            pks = dict(conn.execute(select(study.c.study_iuid, study.c.pk)).all())
        ct_outcome = outcomes(archive.engine, pks[first.study])
        assert set(ct_outcome) == {"tier1-retention", "delete"}
        assert ct_outcome["delete"] - ct_outcome["tier1-retention"] >= timedelta(hours=23)
        assert set(outcomes(archive.engine, pks[mr.study])) == {"delete"}
    finally:
        archive.close()


def test_a_study_still_receiving_waits_for_its_settle_time(
    tmp_path: Path, database_url: str
) -> None:
    archive = make_archive(make_settings(tmp_path, database_url, study_settle_seconds=3600))
    try:
        store_variant(archive, "CT_small.dcm", 1)
        (item,) = admin.list_items(archive.engine)
        assert item.scheduled_at > datetime.now(UTC) + timedelta(minutes=59)
        assert Worker(archive, threads=1, processes=0).run_until_idle() == 0
    finally:
        archive.close()


def test_rule_cli(tmp_path: Path, database_url: str) -> None:
    from hounsfield.cli import app

    settings = make_settings(tmp_path, database_url)
    make_archive(settings).close()
    env = {
        "HOUNSFIELD_DATA_DIR": str(settings.data_dir),
        "HOUNSFIELD_DATABASE_URL": database_url,
        "COLUMNS": "250",
    }
    runner = CliRunner()
    args = ["rule", "add", "old-ct", "--action", "tier1-retention", "--when", "Modality=CT"]
    out = runner.invoke(app, [*args, "--when", "StationName~^CT", "--after", "3 weeks"], env=env)
    assert out.exit_code == 0, out.output
    out = runner.invoke(
        app, ["rule", "add", "bad", "--action", "tier1-retention", "--when", "x"], env=env
    )
    assert out.exit_code == 2 and "cannot read condition" in out.output
    out = runner.invoke(app, ["rule", "list"], env=env)
    assert "old-ct" in out.output and "Modality=CT and StationName~^CT" in out.output
    assert "after 3 weeks from receipt" in out.output
    assert runner.invoke(app, ["rule", "remove", "old-ct"], env=env).exit_code == 0
    assert runner.invoke(app, ["rule", "remove", "old-ct"], env=env).exit_code == 2
