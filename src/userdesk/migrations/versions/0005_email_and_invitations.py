"""email delivery settings, outbox delivery state, invitations and invite links

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from userdesk.models.base import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("workspace") as batch:
        batch.add_column(sa.Column("smtp_host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("smtp_port", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column(
                "smtp_security", sa.String(length=16), nullable=False, server_default="starttls"
            )
        )
        batch.add_column(sa.Column("smtp_username", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("smtp_password", sa.String(length=1000), nullable=True))
        batch.add_column(sa.Column("mail_from_address", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("mail_from_name", sa.String(length=100), nullable=True))
        batch.add_column(
            sa.Column("mail_max_attempts", sa.Integer(), nullable=False, server_default="8")
        )
        batch.add_column(
            sa.Column("invitation_expiry_days", sa.Integer(), nullable=False, server_default="7")
        )

    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("message_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("claimed_until", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("sent_at", UTCDateTime(), nullable=True))

    op.create_table(
        "invitations",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=1024), nullable=False),
        sa.Column("roles", JSONDocument, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("invited_by_id", BigId, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("last_sent_at", UTCDateTime(), nullable=False),
        sa.Column("sent_count", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("accepted_at", UTCDateTime(), nullable=True),
        sa.Column("accepted_user_id", BigId, nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["invited_by_id"],
            ["users.id"],
            name=op.f("fk_invitations_invited_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["accepted_user_id"],
            ["users.id"],
            name=op.f("fk_invitations_accepted_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("public_id", name=op.f("uq_invitations_public_id")),
        sa.UniqueConstraint("digest", name=op.f("uq_invitations_digest")),
    )
    op.create_index("ix_invitations_email_key", "invitations", ["email_key"])
    op.create_index(
        "ix_invitations_open", "invitations", ["accepted_at", "revoked_at", "expires_at"]
    )

    op.create_table(
        "invite_links",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=36), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("roles", JSONDocument, nullable=False),
        sa.Column("created_by_id", BigId, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_invite_links_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_links")),
        sa.UniqueConstraint("public_id", name=op.f("uq_invite_links_public_id")),
        sa.UniqueConstraint("digest", name=op.f("uq_invite_links_digest")),
    )


def downgrade() -> None:
    op.drop_table("invite_links")
    op.drop_table("invitations")
    with op.batch_alter_table("outbox") as batch:
        for column in ("sent_at", "claimed_until", "message_id"):
            batch.drop_column(column)
    with op.batch_alter_table("workspace") as batch:
        for column in (
            "invitation_expiry_days",
            "mail_max_attempts",
            "mail_from_name",
            "mail_from_address",
            "smtp_password",
            "smtp_username",
            "smtp_security",
            "smtp_port",
            "smtp_host",
        ):
            batch.drop_column(column)
