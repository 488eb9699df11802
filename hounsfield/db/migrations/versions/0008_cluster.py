"""cluster: node registry, exact filesystem usage counters, configuration version, device
alternates

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 07:10:00

Filesystem usage is kept by triggers on the file table, in the same transaction as the index
change: rows of `filesystem_usage` per (filesystem, shard) hold byte deltas whose sum is the
usage. On PostgreSQL a connection writes the shard of its backend pid, so concurrent ingest
transactions do not queue on one counter row. `config_version` is bumped by triggers on the
configuration tables; every process compares it every second and reloads what changed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SHARDS = 16
CONFIG_TABLES = ("partition", "device", "filesystem", "server_rule", "reconcile_job")

_PG_USAGE = f"""
CREATE FUNCTION hf_file_usage() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  writer_shard integer := pg_backend_pid() % {SHARDS};
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    INSERT INTO filesystem_usage (filesystem_pk, shard, bytes)
    VALUES (OLD.filesystem_pk, writer_shard, -OLD.size)
    ON CONFLICT (filesystem_pk, shard)
    DO UPDATE SET bytes = filesystem_usage.bytes + EXCLUDED.bytes;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO filesystem_usage (filesystem_pk, shard, bytes)
    VALUES (NEW.filesystem_pk, writer_shard, NEW.size)
    ON CONFLICT (filesystem_pk, shard)
    DO UPDATE SET bytes = filesystem_usage.bytes + EXCLUDED.bytes;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER file_usage AFTER INSERT OR DELETE OR UPDATE OF size, filesystem_pk ON file
FOR EACH ROW EXECUTE FUNCTION hf_file_usage();
CREATE FUNCTION hf_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE config_version SET version = version + 1 WHERE pk = 1;
  RETURN NULL;
END $$;
"""


def _sqlite_usage(row: str, sign: str) -> str:
    return (
        "INSERT INTO filesystem_usage (filesystem_pk, shard, bytes) "
        f"VALUES ({row}.filesystem_pk, 0, {sign}{row}.size) "
        "ON CONFLICT (filesystem_pk, shard) DO UPDATE SET bytes = bytes + excluded.bytes;"
    )


_SQLITE_USAGE = (
    f"CREATE TRIGGER file_usage_insert AFTER INSERT ON file BEGIN {_sqlite_usage('NEW', '')} END",
    f"CREATE TRIGGER file_usage_delete AFTER DELETE ON file BEGIN {_sqlite_usage('OLD', '-')} END",
    "CREATE TRIGGER file_usage_update AFTER UPDATE OF size, filesystem_pk ON file BEGIN "
    f"{_sqlite_usage('OLD', '-')} {_sqlite_usage('NEW', '')} END",
)


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "node",
        sa.Column("pk", PK, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("dimse_port", sa.Integer(), nullable=False),
        sa.Column("http_port", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("runs", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("draining", sa.Boolean(), nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("associations", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_node"),
        sa.UniqueConstraint("name", name="uq_node_name"),
    )
    op.create_table(
        "filesystem_usage",
        sa.Column("filesystem_pk", PK, nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["filesystem_pk"],
            ["filesystem.pk"],
            name="fk_filesystem_usage_filesystem_pk_filesystem",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("filesystem_pk", "shard", name="pk_filesystem_usage"),
    )
    op.execute(
        "INSERT INTO filesystem_usage (filesystem_pk, shard, bytes) "
        "SELECT filesystem_pk, 0, SUM(size) FROM file GROUP BY filesystem_pk"
    )
    op.create_table(
        "config_version",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_config_version"),
    )
    op.execute("INSERT INTO config_version (pk, version) VALUES (1, 1)")
    op.add_column("device", sa.Column("alternates", sa.Text(), nullable=False, server_default="[]"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_USAGE)
        for table in CONFIG_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_config AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION hf_config_changed()"
            )
    else:
        for statement in _SQLITE_USAGE:
            op.execute(statement)
        for table in CONFIG_TABLES:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_config_{event.lower()} AFTER {event} ON {table} "
                    "BEGIN UPDATE config_version SET version = version + 1 WHERE pk = 1; END"
                )


def downgrade() -> None:
    """Revert this revision."""
    if op.get_bind().dialect.name == "postgresql":
        for table in CONFIG_TABLES:
            op.execute(f"DROP TRIGGER {table}_config ON {table}")
        op.execute("DROP TRIGGER file_usage ON file")
        op.execute("DROP FUNCTION hf_file_usage()")
        op.execute("DROP FUNCTION hf_config_changed()")
        op.drop_column("device", "alternates")
    else:
        for table in CONFIG_TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_config_{event}")
        for event in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER file_usage_{event}")
        op.execute("ALTER TABLE device DROP COLUMN alternates")
    op.drop_table("config_version")
    op.drop_table("filesystem_usage")
    op.drop_table("node")
