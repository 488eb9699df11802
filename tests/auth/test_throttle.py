"""Failed logins are counted in the database: every process and node of an archive sees the
same ones, a name from an address is locked after too many, an address after ten times as
many, and a right password clears the name's count."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from hounsfield.archive.context import Archive
from hounsfield.auth import throttle as throttle_module
from hounsfield.auth.throttle import ADDRESS_FACTOR, LoginThrottle
from hounsfield.db import engine as db
from hounsfield.db.tables import login_failure


def _rows(archive: Archive) -> int:
    with db.read(archive.engine) as conn:
        return int(conn.scalar(select(func.count()).select_from(login_failure)) or 0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The throttle's clock, moved by hand: a slow disk or a database's rounding of stored
    times changes nothing."""
    now = [1_000_000.0]
    monkeypatch.setattr(throttle_module.time, "time", lambda: now[0])
    return now


def test_a_name_is_locked_everywhere_after_its_failures(
    archive: Archive, clock: list[float]
) -> None:
    one, other = LoginThrottle(archive.engine, 3, 60), LoginThrottle(archive.engine, 3, 60)
    for _ in range(2):
        one.failed("rad", "10.0.0.1")
        clock[0] += 1
    other.failed("rad", "10.0.0.1")  # a third failure, through another process or node
    assert one.locked_for("rad", "10.0.0.1") == 58  # 60 s from the first of the three
    assert other.locked_for("rad", "10.0.0.1") == 58
    assert one.locked_for("rad", "10.0.0.2") == 0  # the name from elsewhere: not locked
    assert one.locked_for("root", "10.0.0.1") == 0  # another name from the address: not
    with db.read(archive.engine) as conn:
        stored = set(conn.scalars(select(login_failure.c.key_hash)))
    assert not any("rad" in key or "10.0.0.1" in key for key in stored)  # digests only


def test_an_address_trying_many_names_is_locked(archive: Archive, clock: list[float]) -> None:
    throttle = LoginThrottle(archive.engine, 2, 60)
    for n in range(2 * ADDRESS_FACTOR):
        assert throttle.locked_for(f"user{n}", "10.0.0.9") == 0
        throttle.failed(f"user{n}", "10.0.0.9")
    assert throttle.locked_for("anyone", "10.0.0.9") == 60
    assert throttle.locked_for("anyone", "10.0.0.8") == 0


def test_a_right_password_clears_the_name_and_old_failures_go(
    archive: Archive, clock: list[float]
) -> None:
    throttle = LoginThrottle(archive.engine, 2, 60)
    throttle.failed("rad", "10.0.0.1")
    throttle.succeeded("rad", "10.0.0.1")
    throttle.failed("rad", "10.0.0.1")
    assert throttle.locked_for("rad", "10.0.0.1") == 0  # one failure since the success
    clock[0] += 10
    throttle.failed("rad", "10.0.0.1")
    assert throttle.locked_for("rad", "10.0.0.1") == 50  # from the first of the two
    clock[0] += 50.5
    assert throttle.locked_for("rad", "10.0.0.1") == 0  # the lock time has passed
    throttle.failed("ref", "10.0.0.3")  # each failure removes the rows older than the lock
    assert _rows(archive) == 4  # ref's pair and its address, rad's last failure and address
    clock[0] += 10
    throttle.failed("ref", "10.0.0.3")
    assert _rows(archive) == 4  # rad's went
