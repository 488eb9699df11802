"""Web sessions of the admin pages and the viewer: log in for a cookie, check it, log out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from hounsfield.auth import users
from hounsfield.auth.hashing import digest, new_secret
from hounsfield.auth.recent import RECENT
from hounsfield.auth.tokens import aware
from hounsfield.auth.users import User, by_pk
from hounsfield.db import engine as db
from hounsfield.db.tables import web_session

COOKIE = "hounsfield_session"


def login(engine: Engine, name: str, password: str, hours: float) -> str | None:
    """A new web session's cookie value when the password is right; None otherwise."""
    found = users.verify(engine, name, password)
    if found is None:
        return None
    return open_session(engine, found, hours)


def open_session(engine: Engine, owner: User, hours: float) -> str:
    """Start a web session of `owner` lasting `hours`; its cookie value."""
    cookie = new_secret("")
    now = datetime.now(UTC)
    with db.write(engine) as conn:
        conn.execute(delete(web_session).where(web_session.c.expires_at <= now))
        conn.execute(
            insert(web_session).values(
                id_hash=digest(cookie),
                user_pk=owner.pk,
                created_at=now,
                expires_at=now + timedelta(hours=hours),
            )
        )
    return cookie


def verify(engine: Engine, cookie: str) -> User | None:
    """The enabled user of a live web session with this cookie; None otherwise."""
    with db.read(engine) as conn:
        row = (
            conn.execute(select(web_session).where(web_session.c.id_hash == digest(cookie)))
            .mappings()
            .first()
        )
        if row is None or aware(row["expires_at"]) <= datetime.now(UTC):
            return None
        owner = by_pk(conn, row["user_pk"])
    return None if owner is None or owner.disabled else owner


def logout(engine: Engine, cookie: str) -> None:
    """End the web session with this cookie (nothing when there is none)."""
    with db.write(engine) as conn:
        conn.execute(delete(web_session).where(web_session.c.id_hash == digest(cookie)))
    RECENT.clear()
