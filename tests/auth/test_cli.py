"""`hounsfield user` and `hounsfield token` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hounsfield.auth import tokens, users
from hounsfield.cli import app
from tests.conftest import make_archive, make_settings

PASSWORD = "correct horse battery"


def test_users_and_tokens_from_the_cli(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    arch = make_archive(settings)
    env = {
        "HOUNSFIELD_DATA_DIR": str(settings.data_dir),
        "HOUNSFIELD_DATABASE_URL": settings.database_url or "",
    }

    def run(*args: str, stdin: str | None = None) -> str:
        result = CliRunner().invoke(app, list(args), env=env, input=stdin)
        assert result.exit_code == 0, result.output
        return result.stdout

    run("user", "add", "admin", "--role", "admin", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    run(
        "user",
        "add",
        "rad",
        "--role",
        "radiologist",
        "--partition",
        "CLINIC2",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    listed = json.loads(run("user", "list", "--json"))
    assert [(u["name"], u["role"], u["partitions"]) for u in listed] == [
        ("admin", "admin", None),
        ("rad", "radiologist", ["CLINIC2"]),
    ]
    assert users.verify(arch.engine, "admin", PASSWORD) is not None
    mismatch = CliRunner().invoke(
        app, ["user", "add", "x", "--role", "api"], env=env, input="a\nb\n"
    )
    assert mismatch.exit_code != 0
    short = CliRunner().invoke(
        app, ["user", "add", "y", "--role", "api", "--password-stdin"], env=env, input="short\n"
    )
    assert short.exit_code == 2 and "at least" in short.output
    secret = run("token", "create", "rad", "--name", "viewer script", "--days", "30").split()[-1]
    assert tokens.verify(arch.engine, secret) is not None
    token_id = json.loads(run("token", "list", "--json"))[0]["pk"]
    run("token", "revoke", str(token_id))
    assert tokens.verify(arch.engine, secret) is None
    assert "revoked" in run("token", "list")
    run("user", "passwd", "rad", "--password-stdin", stdin="a new long password\n")
    assert users.verify(arch.engine, "rad", "a new long password") is not None
    run("user", "remove", "rad")
    assert [u.name for u in users.list_users(arch.engine)] == ["admin"]
    arch.close()
