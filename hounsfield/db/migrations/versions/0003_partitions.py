"""partitions as tenants: port, duplicate and caller policies, allow-list

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 01:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("partition", schema=None) as batch_op:
        batch_op.add_column(sa.Column("port", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("duplicate_policy", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("caller_policy", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("accept_from", sa.Text(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("partition", schema=None) as batch_op:
        batch_op.drop_column("accept_from")
        batch_op.drop_column("caller_policy")
        batch_op.drop_column("duplicate_policy")
        batch_op.drop_column("port")
