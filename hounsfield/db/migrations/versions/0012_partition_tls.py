"""partition_tls: a DICOM TLS port of a partition's own

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("partition", sa.Column("tls_port", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("partition", "tls_port")
    else:  # not batch mode: recreating the table would drop its config_version triggers
        op.execute("ALTER TABLE partition DROP COLUMN tls_port")
