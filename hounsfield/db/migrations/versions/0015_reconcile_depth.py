"""reconcile_depth: a scheduled reconciliation may compare every instance, not only counts

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 06:00:00

Equal instance counts hide an object missing here and another held here only in the same
series (an image corrected at the clinic under a new UID, the old one still here). A job's
`depth` says whether it compares counts (drilling down where they differ) or every series
instance by instance; existing jobs keep comparing counts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both databases: SQLite's batch mode would copy the table and lose the
# triggers that record configuration changes (migration 0008).


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "reconcile_job",
        sa.Column("depth", sa.String(length=16), nullable=False, server_default="counts"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("reconcile_job", "depth")
