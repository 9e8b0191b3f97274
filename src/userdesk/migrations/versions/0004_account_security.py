"""account security: password policy, one-time links, TOTP, recovery codes, E2EE keys,
sign-in throttling, token permissions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from userdesk.models.base import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    with op.batch_alter_table("workspace") as batch:
        for column, default in (
            ("password_min_length", "12"),
            ("password_max_length", "128"),
        ):
            batch.add_column(
                sa.Column(column, sa.Integer(), nullable=False, server_default=default)
            )
        batch.add_column(sa.Column("password_max_repeated", sa.Integer(), nullable=True))
        for column, on in (
            ("password_require_lowercase", False),
            ("password_require_uppercase", False),
            ("password_require_digit", False),
            ("password_require_symbol", False),
            ("password_reject_common", True),
            ("password_reject_personal", True),
            ("email_verification_required", False),
        ):
            batch.add_column(
                sa.Column(
                    column,
                    sa.Boolean(),
                    nullable=False,
                    server_default=sa.true() if on else sa.false(),
                )
            )
        batch.add_column(
            sa.Column(
                "two_factor_required_roles", JSONDocument, nullable=False, server_default="[]"
            )
        )
        for column, default in (
            ("lockout_threshold", "10"),
            ("lockout_minutes", "15"),
            ("ip_failure_limit", "100"),
        ):
            batch.add_column(
                sa.Column(column, sa.Integer(), nullable=False, server_default=default)
            )

    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("password_changed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("totp_secret", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("totp_pending_secret", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("totp_enabled_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("e2e_keys_at", UTCDateTime(), nullable=True))

    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("permissions", JSONDocument, nullable=True))

    op.create_table(
        "one_time_links",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        _user_fk("one_time_links"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_one_time_links")),
        sa.UniqueConstraint("digest", name=op.f("uq_one_time_links_digest")),
    )
    op.create_index("ix_one_time_links_user_id_purpose", "one_time_links", ["user_id", "purpose"])

    op.create_table(
        "recovery_codes",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        _user_fk("recovery_codes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
        sa.UniqueConstraint("user_id", "digest", name=op.f("uq_recovery_codes_user_id_digest")),
    )

    op.create_table(
        "e2e_keys",
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _user_fk("e2e_keys"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_e2e_keys")),
    )

    op.create_table(
        "sign_in_throttles",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", UTCDateTime(), nullable=False),
        sa.Column("last_failure_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sign_in_throttles")),
    )
    op.create_index(
        "ix_sign_in_throttles_last_failure_at", "sign_in_throttles", ["last_failure_at"]
    )


def downgrade() -> None:
    op.drop_table("sign_in_throttles")
    op.drop_table("e2e_keys")
    op.drop_table("recovery_codes")
    op.drop_table("one_time_links")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("permissions")
    with op.batch_alter_table("users") as batch:
        for column in (
            "e2e_keys_at",
            "totp_last_step",
            "totp_enabled_at",
            "totp_pending_secret",
            "totp_secret",
            "password_changed_at",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("workspace") as batch:
        for column in (
            "ip_failure_limit",
            "lockout_minutes",
            "lockout_threshold",
            "two_factor_required_roles",
            "email_verification_required",
            "password_reject_personal",
            "password_reject_common",
            "password_require_symbol",
            "password_require_digit",
            "password_require_uppercase",
            "password_require_lowercase",
            "password_max_repeated",
            "password_max_length",
            "password_min_length",
        ):
            batch.drop_column(column)
