"""users: local users, API tokens and web sessions of the HTTP interfaces

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_pk"], ["user.pk"], name=f"fk_{table}_user_pk_user", ondelete="CASCADE"
    )


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "user",
        sa.Column("pk", PK, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("partitions", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_user"),
        sa.UniqueConstraint("name", name="uq_user_name"),
    )
    op.create_table(
        "api_token",
        sa.Column("pk", PK, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_pk", PK, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        _user_fk("api_token"),
        sa.PrimaryKeyConstraint("pk", name="pk_api_token"),
        sa.UniqueConstraint("token_hash", name="uq_api_token_token_hash"),
    )
    op.create_index("ix_api_token_user_pk", "api_token", ["user_pk"])
    op.create_table(
        "web_session",
        sa.Column("pk", PK, nullable=False),
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_pk", PK, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _user_fk("web_session"),
        sa.PrimaryKeyConstraint("pk", name="pk_web_session"),
        sa.UniqueConstraint("id_hash", name="uq_web_session_id_hash"),
    )
    op.create_index("ix_web_session_user_pk", "web_session", ["user_pk"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_web_session_user_pk", table_name="web_session")
    op.drop_table("web_session")
    op.drop_index("ix_api_token_user_pk", table_name="api_token")
    op.drop_table("api_token")
    op.drop_table("user")
