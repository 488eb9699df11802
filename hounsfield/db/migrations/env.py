"""Alembic environment: runs migrations on the connection handed over by migrate.py."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from hounsfield.db.tables import metadata

config = context.config


def run() -> None:
    """Run migrations online, on the given connection or a fresh engine."""
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            _configure_and_run(conn)
    else:
        _configure_and_run(connection)


def _configure_and_run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
