"""API tokens for scripts: created with a secret shown once, revoked, checked with expiry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, insert, select, update
from sqlalchemy.engine import Engine, RowMapping

from hounsfield.audit.config import config_changed
from hounsfield.auth.hashing import digest, new_secret
from hounsfield.auth.recent import RECENT
from hounsfield.auth.users import User, by_pk, get
from hounsfield.db import engine as db
from hounsfield.db.tables import api_token, user
from hounsfield.errors import InvalidUser, NotFound

PREFIX = "hf_"
_TOUCH = timedelta(minutes=1)  # last_used_at is written at most this often


@dataclass(frozen=True)
class Token:
    """An API token as stored (never with its secret)."""

    pk: int
    user: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def state(self) -> str:
        """active, expired or revoked."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and aware(self.expires_at) <= datetime.now(UTC):
            return "expired"
        return "active"


def aware(value: datetime) -> datetime:
    """A stored time as UTC-aware (SQLite returns naive ones)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _token(row: RowMapping) -> Token:
    return Token(
        pk=row["pk"],
        user=row["user_name"],
        name=row["name"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


def create(
    engine: Engine, user_name: str, name: str, days: float | None = None
) -> tuple[Token, str]:
    """A new token of `user_name` valid for `days` (None: until revoked), and its secret."""
    if not name.strip() or len(name) > 64:
        raise InvalidUser("a token needs a name of 1 to 64 characters")
    if days is not None and days <= 0:
        raise InvalidUser("a token's lifetime must be positive")
    secret = new_secret(PREFIX)
    now = datetime.now(UTC)
    expires = None if days is None else now + timedelta(days=days)
    with db.write(engine) as conn:
        owner = get(conn, user_name)
        pk = conn.execute(
            insert(api_token)
            .values(
                token_hash=digest(secret),
                user_pk=owner.pk,
                name=name.strip(),
                created_at=now,
                expires_at=expires,
            )
            .returning(api_token.c.pk)
        ).scalar_one()
    config_changed(engine, f"API token {pk} ({name.strip()}) of user {owner.name} created")
    return Token(pk, owner.name, name.strip(), now, expires, None, None), secret


def _listing() -> Select[Any]:
    return select(api_token, user.c.name.label("user_name")).join(
        user, user.c.pk == api_token.c.user_pk
    )


def list_tokens(engine: Engine, user_name: str | None = None) -> list[Token]:
    """Every token (or one user's), oldest first."""
    query = _listing().order_by(api_token.c.pk)
    if user_name is not None:
        query = query.where(user.c.name == user_name)
    with db.read(engine) as conn:
        return [_token(r) for r in conn.execute(query).mappings()]


def revoke(engine: Engine, pk: int) -> None:
    """Revoke a token now; NotFound when there is no such token."""
    with db.write(engine) as conn:
        done = conn.execute(
            update(api_token)
            .where(api_token.c.pk == pk, api_token.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        if (
            done.rowcount == 0
            and not conn.execute(select(api_token.c.pk).where(api_token.c.pk == pk)).first()
        ):
            raise NotFound(f"no API token {pk}")
    RECENT.clear()
    config_changed(engine, f"API token {pk} revoked")


def verify(engine: Engine, secret: str) -> User | None:
    """The enabled owner of an active token with this secret; None otherwise."""
    with db.read(engine) as conn:
        row = (
            conn.execute(select(api_token).where(api_token.c.token_hash == digest(secret)))
            .mappings()
            .first()
        )
        owner = None if row is None else by_pk(conn, row["user_pk"])
    if row is None or owner is None or owner.disabled or row["revoked_at"] is not None:
        return None
    now = datetime.now(UTC)
    if row["expires_at"] is not None and aware(row["expires_at"]) <= now:
        return None
    used = row["last_used_at"]
    if used is None or aware(used) < now - _TOUCH:
        with db.write(engine) as conn:
            conn.execute(
                update(api_token).where(api_token.c.pk == row["pk"]).values(last_used_at=now)
            )
    return owner
