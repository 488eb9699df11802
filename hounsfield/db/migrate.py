"""Alembic migrations driven from code: upgrade, current revision and the outdated check."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from hounsfield.errors import SchemaOutdated

_HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (idempotent)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def check_current(engine: Engine) -> None:
    """Raise SchemaOutdated unless the database is at the head revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutdated(
            f"database schema is at {current or 'nothing'}, this version needs {head}: "
            "run `hounsfield db upgrade`"
        )
