"""Local users: add, list, remove, change a password, check one (argon2)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine, RowMapping

from hounsfield.audit.config import config_changed
from hounsfield.auth.hashing import check_password, hash_password, needs_rehash
from hounsfield.auth.policy import ALL_PARTITIONS, ROLES, Principal, parse_partitions
from hounsfield.auth.recent import RECENT
from hounsfield.db import engine as db
from hounsfield.db.tables import api_token, user, web_session
from hounsfield.errors import InvalidUser, NotFound, UserExists

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 8


@dataclass(frozen=True)
class User:
    """A local user as stored (never with the password hash)."""

    pk: int
    name: str
    role: str
    partitions: list[str] | None  # None: every partition
    created_at: datetime
    disabled: bool

    def principal(self, via: str) -> Principal:
        """This user as the caller of a request."""
        parts = None if self.partitions is None else frozenset(self.partitions)
        return Principal(self.name, self.role, parts, via=via)


def _user(row: RowMapping) -> User:
    parts = parse_partitions(json.loads(row["partitions"]))
    return User(
        pk=row["pk"],
        name=row["name"],
        role=row["role"],
        partitions=None if parts is None else sorted(parts),
        created_at=row["created_at"],
        disabled=row["disabled"],
    )


def check_password_rules(password: str) -> None:
    """InvalidUser unless the password is long enough."""
    if len(password) < MIN_PASSWORD:
        raise InvalidUser(f"a password needs at least {MIN_PASSWORD} characters")


def add(
    engine: Engine, name: str, password: str, role: str, partitions: list[str] | None = None
) -> User:
    """Create a user; `partitions` None or empty: every partition."""
    if not _NAME.match(name):
        raise InvalidUser(f"invalid user name {name!r}: letters, digits and _ . @ -")
    if role not in ROLES:
        raise InvalidUser(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    check_password_rules(password)
    stored = json.dumps(sorted(set(partitions)) if partitions else ALL_PARTITIONS)
    with db.write(engine) as conn:
        if conn.execute(select(user.c.pk).where(user.c.name == name)).first():
            raise UserExists(f"user {name} exists already")
        conn.execute(
            insert(user).values(
                name=name,
                password_hash=hash_password(password),
                role=role,
                partitions=stored,
                created_at=datetime.now(UTC),
                disabled=False,
            )
        )
        made = get(conn, name)
    config_changed(engine, f"user {name} added ({role}, partitions {stored})")
    return made


def get(conn: Connection, name: str) -> User:
    """The user called `name`; NotFound when there is none."""
    row = conn.execute(select(user).where(user.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"no user {name}")
    return _user(row)


def by_pk(conn: Connection, pk: int) -> User | None:
    """The user with primary key `pk`, if any."""
    row = conn.execute(select(user).where(user.c.pk == pk)).mappings().first()
    return None if row is None else _user(row)


def list_users(engine: Engine) -> list[User]:
    """Every user, by name."""
    with db.read(engine) as conn:
        rows = conn.execute(select(user).order_by(user.c.name)).mappings()
        return [_user(r) for r in rows]


def remove(engine: Engine, name: str) -> None:
    """Remove a user with their API tokens and web sessions."""
    with db.write(engine) as conn:
        pk = get(conn, name).pk
        conn.execute(delete(api_token).where(api_token.c.user_pk == pk))
        conn.execute(delete(web_session).where(web_session.c.user_pk == pk))
        conn.execute(delete(user).where(user.c.pk == pk))
    RECENT.clear()
    config_changed(engine, f"user {name} removed")


def passwd(engine: Engine, name: str, password: str) -> None:
    """Set a new password; the user's web sessions end."""
    check_password_rules(password)
    with db.write(engine) as conn:
        pk = get(conn, name).pk
        conn.execute(
            update(user).where(user.c.pk == pk).values(password_hash=hash_password(password))
        )
        conn.execute(delete(web_session).where(web_session.c.user_pk == pk))
    RECENT.clear()
    config_changed(engine, f"password of user {name} changed")


def verify(engine: Engine, name: str, password: str) -> User | None:
    """The user when `password` is theirs and they are enabled; None otherwise."""
    with db.read(engine) as conn:
        row = conn.execute(select(user).where(user.c.name == name)).mappings().first()
    stored = None if row is None else str(row["password_hash"])
    if not check_password(stored, password) or row is None or row["disabled"]:
        return None
    if stored is not None and needs_rehash(stored):
        with db.write(engine) as conn:
            conn.execute(
                update(user)
                .where(user.c.pk == row["pk"])
                .values(password_hash=hash_password(password))
            )
    return _user(row)
