"""patient_search: indexes for a search by Patient ID alone and by a name's first letters

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 14:00:00

The unique key (partition, Patient ID, issuer, match key) serves a lookup within a
partition; a C-FIND or QIDO-RS search joins the patient to its studies and names the
partition on the study, so a search by Patient ID read every patient row. A name match
such as DOE* is a LIKE prefix, which a B-tree in the database's collation cannot serve on
PostgreSQL: the name key gets a second index in pattern order there.
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_index("ix_patient_patient_id", "patient", ["patient_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_patient_name_key_prefix",
            "patient",
            ["name_key"],
            postgresql_ops={"name_key": "varchar_pattern_ops"},
        )


def downgrade() -> None:
    """Revert this revision."""
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_patient_name_key_prefix", "patient")
    op.drop_index("ix_patient_patient_id", "patient")
