"""sign-in sessions and their timeouts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from userdesk.models.base import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "login_sessions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_login_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_sessions")),
        sa.UniqueConstraint("digest", name=op.f("uq_login_sessions_digest")),
        sa.UniqueConstraint("public_id", name=op.f("uq_login_sessions_public_id")),
    )
    op.create_index("ix_login_sessions_user_id", "login_sessions", ["user_id"])
    with op.batch_alter_table("workspace") as batch:
        batch.add_column(
            sa.Column("session_idle_minutes", sa.Integer(), nullable=False, server_default="480")
        )
        batch.add_column(
            sa.Column("session_max_hours", sa.Integer(), nullable=False, server_default="168")
        )


def downgrade() -> None:
    with op.batch_alter_table("workspace") as batch:
        batch.drop_column("session_max_hours")
        batch.drop_column("session_idle_minutes")
    op.drop_table("login_sessions")
