"""virtual partitions: kind, members in precedence order, cache partition, member timeout

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "partition",
        sa.Column("kind", sa.String(length=8), nullable=False, server_default="local"),
    )
    op.add_column("partition", sa.Column("members", sa.Text(), nullable=False, server_default="[]"))
    op.add_column("partition", sa.Column("cache_to", sa.String(length=16), nullable=True))
    op.add_column("partition", sa.Column("member_timeout", sa.Float(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    # SQLite (3.35 and newer) drops these in place: rebuilding the table would trip the
    # foreign keys of the rows that refer to it.
    for column in ("member_timeout", "cache_to", "members", "kind"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f'ALTER TABLE "partition" DROP COLUMN {column}')
        else:
            op.drop_column("partition", column)
