"""Credentials verified a moment ago are not looked up again for a few seconds; what this
process changes about users, tokens and sessions counts at once, what another process or
node changes within the time they are kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from hounsfield.auth import recent, tokens, users
from hounsfield.auth.policy import Principal
from hounsfield.auth.recent import Recent
from hounsfield.db import engine as db
from hounsfield.db.tables import api_token
from tests.auth.conftest import PASSWORD, Node

STUDIES = "/dicomweb/studies"


def test_kept_for_the_time_and_the_size() -> None:
    clock = [100.0]
    kept = Recent(ttl=5.0, size=2, clock=lambda: clock[0])
    rad, oper = Principal("rad", "radiologist"), Principal("oper", "operator")
    kept.put("token", "hf_a", rad)
    assert kept.get("token", "hf_a") == rad
    assert kept.get("session", "hf_a") is None  # another kind of credential
    clock[0] += 5.0
    assert kept.get("token", "hf_a") is None  # its time is up
    kept.put("token", "hf_a", rad)
    kept.put("token", "hf_b", oper)
    kept.put("token", "hf_c", oper)  # a third: the least recently verified goes
    assert kept.get("token", "hf_a") is None and kept.get("token", "hf_b") == oper
    kept.clear()
    assert kept.get("token", "hf_b") is None


def test_a_change_elsewhere_counts_once_the_time_is_up(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(recent.RECENT, "clock", lambda: clock[0])
    recent.RECENT.clear()
    client, engine = node.client, node.archive.engine
    assert client.get(STUDIES, headers=node.headers("script")).status_code == 200
    with db.write(engine) as conn:  # revoked by another process or node: no clearing here
        conn.execute(update(api_token).values(revoked_at=datetime.now(UTC)))
    assert client.get(STUDIES, headers=node.headers("script")).status_code == 200  # kept
    clock[0] += recent.TTL_SECONDS
    assert client.get(STUDIES, headers=node.headers("script")).status_code == 401


def test_a_change_here_counts_at_once(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recent.RECENT, "clock", lambda: 1000.0)  # nothing expires meanwhile
    recent.RECENT.clear()
    client, engine = node.client, node.archive.engine
    assert client.get(STUDIES, headers=node.headers("script")).status_code == 200
    tokens.revoke(engine, tokens.list_tokens(engine, "script")[0].pk)
    assert client.get(STUDIES, headers=node.headers("script")).status_code == 401
    assert client.get(STUDIES, headers=node.headers("oper")).status_code == 200
    users.remove(engine, "oper")
    assert client.get(STUDIES, headers=node.headers("oper")).status_code == 401
    login = client.post(
        "/ui/login",
        data={"name": "rad", "password": PASSWORD, "next": "/viewer"},
        follow_redirects=False,
    )
    assert login.status_code == 303
    cookie = dict(client.cookies)
    assert client.get(STUDIES).status_code == 200  # the session, verified and kept
    assert client.post("/ui/logout", follow_redirects=False).status_code == 303
    client.cookies.clear()
    assert client.get(STUDIES, cookies=cookie).status_code == 401  # the ended session
