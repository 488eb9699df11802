"""The migrations make the very tables, columns and indexes the code declares (`db.tables`),
on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hounsfield.db import migrate
from hounsfield.db.engine import make_engine
from hounsfield.db.tables import metadata
from hounsfield.settings import Settings

POSTGRESQL_ONLY = {"ix_patient_name_key_prefix"}  # declared with ddl_if(dialect="postgresql")


def test_the_migrations_make_the_declared_schema(database_url: str) -> None:
    engine = make_engine(Settings(database_url=database_url).sqlalchemy_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    if engine.dialect.name == "sqlite":
        differences = [
            d for d in differences if not (d[0] == "add_index" and d[1].name in POSTGRESQL_ONLY)
        ]
    assert differences == []
