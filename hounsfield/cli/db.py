"""`hounsfield db`: create, upgrade and inspect the database schema."""

from __future__ import annotations

import typer

from hounsfield.cli.output import console, settings
from hounsfield.db import migrate
from hounsfield.db.engine import make_engine

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema."""
    current = settings()
    current.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(current.sqlalchemy_url)
    migrate.upgrade(engine)
    console.print(f"database at revision {migrate.current_revision(engine)}")


@app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the one this version needs."""
    engine = make_engine(settings().sqlalchemy_url)
    console.print(f"current {migrate.current_revision(engine)}, head {migrate.head_revision()}")
