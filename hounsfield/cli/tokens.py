"""`hounsfield token`: API tokens for scripts (the secret is printed once), list, revoke."""

from __future__ import annotations

from typing import Annotated

import typer

from hounsfield.auth import tokens
from hounsfield.cli.output import JsonOpt, archive, console, print_json, rows_table

app = typer.Typer(help="API tokens for scripts (Authorization: Bearer).", no_args_is_help=True)


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else "-"


@app.command("create")
def token_create(
    user: str,
    name: Annotated[str, typer.Option("--name", help="What the token is for.")],
    days: Annotated[float | None, typer.Option(help="Lifetime in days (default: none).")] = None,
) -> None:
    """Create a token for USER and print its secret (shown this once only)."""
    with archive() as arch:
        token, secret = tokens.create(arch.engine, user, name, days)
    console.print(f"token {token.pk} for {token.user}, expires {_when(token.expires_at)}:")
    typer.echo(secret)


@app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option(help="Only this user's tokens.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """List tokens (never their secrets)."""
    with archive() as arch:
        found = tokens.list_tokens(arch.engine, user)
    if json_output:
        print_json([{**t.__dict__, "state": t.state} for t in found])
        return
    rows_table(
        ("id", "user", "name", "state", "created", "expires", "last used"),
        (
            (
                str(t.pk),
                t.user,
                t.name,
                t.state,
                _when(t.created_at),
                _when(t.expires_at),
                _when(t.last_used_at),
            )
            for t in found
        ),
    )


@app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token by its id (`token list`)."""
    with archive() as arch:
        tokens.revoke(arch.engine, token_id)
    console.print(f"token {token_id} revoked")
