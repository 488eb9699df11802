"""Users, argon2 hashes, API tokens and web sessions as stored (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from hounsfield.archive.context import Archive
from hounsfield.auth import sessions, tokens, users
from hounsfield.db.tables import api_token, user, web_session
from hounsfield.errors import InvalidUser, NotFound, UserExists

PASSWORD = "correct horse battery"


def test_users_are_stored_with_argon2_hashes(archive: Archive) -> None:
    added = users.add(archive.engine, "ann", PASSWORD, "radiologist", ["HOUNSFIELD"])
    assert (added.role, added.partitions) == ("radiologist", ["HOUNSFIELD"])
    with archive.engine.connect() as conn:
        stored = conn.execute(select(user.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert users.verify(archive.engine, "ann", PASSWORD) == added
    assert users.verify(archive.engine, "ann", "wrong password") is None
    assert users.verify(archive.engine, "nobody", PASSWORD) is None
    assert [u.name for u in users.list_users(archive.engine)] == ["ann"]


def test_bad_users_are_refused(archive: Archive) -> None:
    users.add(archive.engine, "ann", PASSWORD, "admin")
    with pytest.raises(UserExists):
        users.add(archive.engine, "ann", PASSWORD, "admin")
    with pytest.raises(InvalidUser):
        users.add(archive.engine, "bob", PASSWORD, "superuser")
    with pytest.raises(InvalidUser):
        users.add(archive.engine, "bob", "short", "admin")
    with pytest.raises(InvalidUser):
        users.add(archive.engine, "bad name", PASSWORD, "admin")


def test_passwd_ends_sessions_and_remove_takes_tokens(archive: Archive) -> None:
    users.add(archive.engine, "ann", PASSWORD, "operator")
    cookie = sessions.login(archive.engine, "ann", PASSWORD, hours=1)
    assert cookie is not None and sessions.verify(archive.engine, cookie) is not None
    users.passwd(archive.engine, "ann", "another long password")
    assert sessions.verify(archive.engine, cookie) is None
    assert users.verify(archive.engine, "ann", PASSWORD) is None
    assert users.verify(archive.engine, "ann", "another long password") is not None
    tokens.create(archive.engine, "ann", "script")
    users.remove(archive.engine, "ann")
    with archive.engine.connect() as conn:
        assert conn.execute(select(api_token)).first() is None
        assert conn.execute(select(web_session)).first() is None
    with pytest.raises(NotFound):
        users.remove(archive.engine, "ann")


def test_tokens_expire_and_are_revoked(archive: Archive) -> None:
    users.add(archive.engine, "bot", PASSWORD, "api")
    token, secret = tokens.create(archive.engine, "bot", "nightly", days=1)
    assert secret.startswith("hf_")
    with archive.engine.connect() as conn:
        assert conn.execute(select(api_token.c.token_hash)).scalar_one() != secret
    owner = tokens.verify(archive.engine, secret)
    assert owner is not None and owner.name == "bot"
    assert tokens.list_tokens(archive.engine)[0].last_used_at is not None
    assert tokens.verify(archive.engine, secret + "x") is None
    past = datetime.now(UTC) - timedelta(seconds=1)
    with archive.engine.begin() as conn:
        conn.execute(update(api_token).values(expires_at=past))
    assert tokens.verify(archive.engine, secret) is None
    assert tokens.list_tokens(archive.engine)[0].state == "expired"
    other, other_secret = tokens.create(archive.engine, "bot", "forever")
    assert tokens.verify(archive.engine, other_secret) is not None
    tokens.revoke(archive.engine, other.pk)
    assert tokens.verify(archive.engine, other_secret) is None
    assert [t.state for t in tokens.list_tokens(archive.engine)] == ["expired", "revoked"]
    with pytest.raises(NotFound):
        tokens.revoke(archive.engine, 9999)
    assert token.pk != other.pk


def test_sessions_expire_and_log_out(archive: Archive) -> None:
    users.add(archive.engine, "ann", PASSWORD, "radiologist")
    assert sessions.login(archive.engine, "ann", "wrong password", hours=1) is None
    cookie = sessions.login(archive.engine, "ann", PASSWORD, hours=1)
    assert cookie is not None
    sessions.logout(archive.engine, cookie)
    assert sessions.verify(archive.engine, cookie) is None
    cookie = sessions.login(archive.engine, "ann", PASSWORD, hours=1)
    assert cookie is not None
    with archive.engine.begin() as conn:
        conn.execute(update(web_session).values(expires_at=datetime.now(UTC)))
    assert sessions.verify(archive.engine, cookie) is None
    with archive.engine.begin() as conn:
        conn.execute(update(user).values(disabled=True))
    assert sessions.login(archive.engine, "ann", PASSWORD, hours=1) is None
