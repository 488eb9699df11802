"""forwarding (device options, forward state per study and destination), mirrors, verification

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 04:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("protocol", sa.String(length=8), nullable=False, server_default="dimse")
        )
        batch_op.add_column(sa.Column("url", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("associations", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(sa.Column("bandwidth_kbps", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("commitment", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    if op.get_bind().dialect.name == "sqlite":
        # Recreating the table (batch mode) would trip the file rows' foreign keys; SQLite
        # adds a column with its reference in place.
        op.execute(
            "ALTER TABLE filesystem ADD COLUMN mirror_of_pk INTEGER "
            "CONSTRAINT fk_filesystem_mirror_of_pk_filesystem REFERENCES filesystem (pk)"
        )
    else:
        op.add_column("filesystem", sa.Column("mirror_of_pk", PK, nullable=True))
        op.create_foreign_key(
            "fk_filesystem_mirror_of_pk_filesystem",
            "filesystem",
            "filesystem",
            ["mirror_of_pk"],
            ["pk"],
        )
    op.add_column("filesystem", sa.Column("mirror_mode", sa.String(length=8), nullable=True))
    with op.batch_alter_table("file", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "forward",
        sa.Column("pk", PK, nullable=False),
        sa.Column("partition_pk", PK, nullable=False),
        sa.Column("study_iuid", sa.String(length=64), nullable=False),
        sa.Column("series_iuid", sa.String(length=64), nullable=False),
        sa.Column("destination", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("committed", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("transaction_uid", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["partition_pk"], ["partition.pk"], name="fk_forward_partition_pk_partition"
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_forward"),
        sa.UniqueConstraint(
            "partition_pk",
            "study_iuid",
            "series_iuid",
            "destination",
            name="uq_forward_partition_pk_study_iuid_series_iuid_destination",
        ),
    )
    op.create_index("ix_forward_destination_state", "forward", ["destination", "state"])
    op.create_index("ix_forward_transaction_uid", "forward", ["transaction_uid"])
    op.create_table(
        "forward_instance",
        sa.Column("pk", PK, nullable=False),
        sa.Column("forward_pk", PK, nullable=False),
        sa.Column("sop_iuid", sa.String(length=64), nullable=False),
        sa.Column("sop_cuid", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["forward_pk"],
            ["forward.pk"],
            name="fk_forward_instance_forward_pk_forward",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_forward_instance"),
        sa.UniqueConstraint(
            "forward_pk", "sop_iuid", name="uq_forward_instance_forward_pk_sop_iuid"
        ),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("forward_instance")
    op.drop_index("ix_forward_transaction_uid", table_name="forward")
    op.drop_index("ix_forward_destination_state", table_name="forward")
    op.drop_table("forward")
    with op.batch_alter_table("file", schema=None) as batch_op:
        batch_op.drop_column("verified_at")
    op.drop_column("filesystem", "mirror_mode")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE filesystem DROP COLUMN mirror_of_pk")  # SQLite 3.35 and newer
    else:
        op.drop_constraint(
            "fk_filesystem_mirror_of_pk_filesystem", "filesystem", type_="foreignkey"
        )
        op.drop_column("filesystem", "mirror_of_pk")
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.drop_column("commitment")
        batch_op.drop_column("bandwidth_kbps")
        batch_op.drop_column("associations")
        batch_op.drop_column("url")
        batch_op.drop_column("protocol")
