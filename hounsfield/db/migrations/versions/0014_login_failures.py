"""login_failures: failed logins counted in the database, by every process and node

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 01:30:00

A node answers HTTP from several processes, and a cluster from several nodes: failed
logins counted in each process's memory let a guesser try once per process. Each failure
is a row (the SHA-256 of what is counted, and when); the rows older than the lock time go.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "login_failure",
        sa.Column("pk", PK, nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_login_failure"),
    )
    op.create_index(
        "ix_login_failure_key_hash_failed_at", "login_failure", ["key_hash", "failed_at"]
    )
    op.create_index("ix_login_failure_failed_at", "login_failure", ["failed_at"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_login_failure_failed_at", table_name="login_failure")
    op.drop_index("ix_login_failure_key_hash_failed_at", table_name="login_failure")
    op.drop_table("login_failure")
