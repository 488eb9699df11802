"""The admin API of users and API tokens (admins only: the gate asks for `users`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from hounsfield.archive.context import Archive
from hounsfield.auth import tokens, users


class NewUser(BaseModel):
    """A user to create."""

    name: str
    password: str
    role: str
    partitions: list[str] = []


class NewToken(BaseModel):
    """A token to create for a user."""

    user: str
    name: str
    days: float | None = None


def mount(app: FastAPI, archive: Archive) -> None:
    """/admin/users and /admin/tokens."""
    router = APIRouter(prefix="/admin", tags=["admin"])
    engine = archive.engine

    @router.get("/users")
    def get_users() -> list[users.User]:
        return users.list_users(engine)

    @router.post("/users", status_code=201)
    def post_user(body: NewUser) -> users.User:
        return users.add(engine, body.name, body.password, body.role, body.partitions or None)

    @router.delete("/users/{name}", status_code=204)
    def delete_user(name: str) -> None:
        users.remove(engine, name)

    @router.get("/tokens")
    def get_tokens() -> list[tokens.Token]:
        return tokens.list_tokens(engine)

    @router.post("/tokens", status_code=201)
    def post_token(body: NewToken) -> dict[str, Any]:
        token, secret = tokens.create(engine, body.user, body.name, body.days)
        return {"id": token.pk, "secret": secret, "expires_at": token.expires_at}

    @router.delete("/tokens/{pk}", status_code=204)
    def delete_token(pk: int) -> None:
        tokens.revoke(engine, pk)

    app.include_router(router)
