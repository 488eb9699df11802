"""reconciliation with peers: reports, their differences, scheduled jobs

Revision ID: 0007
Revises: 0006 (virtual partitions; both were written as 0006 at the same time)
Create Date: 2026-11-30 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "reconcile_report",
        sa.Column("pk", PK, nullable=False),
        sa.Column("partition_ae", sa.String(length=16), nullable=False),
        sa.Column("peer_ae", sa.String(length=16), nullable=False),
        sa.Column("date_from", sa.String(length=8), nullable=False),
        sa.Column("date_to", sa.String(length=8), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("local_studies", sa.Integer(), nullable=False),
        sa.Column("local_instances", sa.Integer(), nullable=False),
        sa.Column("peer_studies", sa.Integer(), nullable=False),
        sa.Column("peer_instances", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("extra", sa.Integer(), nullable=False),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("pushed", sa.Integer(), nullable=False),
        sa.Column("missing_left", sa.Integer(), nullable=False),
        sa.Column("extra_left", sa.Integer(), nullable=False),
        sa.Column("passes", sa.Integer(), nullable=False),
        sa.Column("days", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_reconcile_report"),
    )
    op.create_index(
        "ix_reconcile_report_partition_ae_peer_ae_state",
        "reconcile_report",
        ["partition_ae", "peer_ae", "state"],
    )
    op.create_table(
        "reconcile_difference",
        sa.Column("pk", PK, nullable=False),
        sa.Column("report_pk", PK, nullable=False),
        sa.Column("pass_no", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("study_iuid", sa.String(length=64), nullable=False),
        sa.Column("series_iuid", sa.String(length=64), nullable=False),
        sa.Column("sop_iuid", sa.String(length=64), nullable=False),
        sa.Column("sop_cuid", sa.String(length=64), nullable=False),
        sa.Column("study_date", sa.String(length=8), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("repair", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_pk"],
            ["reconcile_report.pk"],
            name="fk_reconcile_difference_report_pk_reconcile_report",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_reconcile_difference"),
    )
    op.create_index("ix_reconcile_difference_report_pk", "reconcile_difference", ["report_pk"])
    op.create_table(
        "reconcile_job",
        sa.Column("pk", PK, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("partition_ae", sa.String(length=16), nullable=False),
        sa.Column("peer_ae", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("at_time", sa.String(length=5), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_report_pk", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name="pk_reconcile_job"),
        sa.UniqueConstraint("name", name="uq_reconcile_job_name"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("reconcile_job")
    op.drop_index("ix_reconcile_difference_report_pk", table_name="reconcile_difference")
    op.drop_table("reconcile_difference")
    op.drop_index("ix_reconcile_report_partition_ae_peer_ae_state", table_name="reconcile_report")
    op.drop_table("reconcile_report")
