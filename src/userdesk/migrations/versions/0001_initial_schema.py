"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from userdesk.models.base import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.String(length=36), nullable=True),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("target_name", sa.String(length=200), nullable=True),
        sa.Column(
            "changes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entries_action_id", ["action", "id"], unique=False)
        batch_op.create_index("ix_audit_entries_actor_id_id", ["actor_id", "id"], unique=False)
        batch_op.create_index("ix_audit_entries_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_entries_target_id_id", ["target_id", "id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "roles",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column(
            "permissions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("built_in", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_roles_name")),
    )
    op.create_table(
        "user_counts",
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "active",
                "deactivated",
                name="user_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "type",
            sa.Enum(
                "human",
                "bot",
                name="user_type",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("count >= 0", name=op.f("ck_user_counts_count_non_negative")),
        sa.PrimaryKeyConstraint("status", "type", name=op.f("pk_user_counts")),
    )
    op.create_table(
        "users",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=36), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("username_key", _sort_key(128), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", _sort_key(1024), nullable=False),
        sa.Column("email_verified", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", _sort_key(400), nullable=False),
        sa.Column("given_name", sa.String(length=200), nullable=True),
        sa.Column("family_name", sa.String(length=200), nullable=True),
        sa.Column("nickname", sa.String(length=200), nullable=True),
        sa.Column("bio", sa.Text(), nullable=True),
        sa.Column("status_message", sa.String(length=500), nullable=True),
        sa.Column("voip_extension", sa.String(length=32), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column(
            "avatar_kind",
            sa.Enum(
                "initials",
                "url",
                "upload",
                name="avatar_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("avatar_url", sa.String(length=2048), nullable=True),
        sa.Column(
            "type",
            sa.Enum(
                "human",
                "bot",
                name="user_type",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "active",
                "deactivated",
                name="user_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("require_password_change", sa.Boolean(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_login_at", UTCDateTime(), nullable=True),
        sa.Column("last_login_key", UTCDateTime(), nullable=False),
        sa.Column("deactivated_at", UTCDateTime(), nullable=True),
        sa.Column(
            "created_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_users_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email_key", name=op.f("uq_users_email_key")),
        sa.UniqueConstraint("public_id", name=op.f("uq_users_public_id")),
        sa.UniqueConstraint("username_key", name=op.f("uq_users_username_key")),
        sa.UniqueConstraint("voip_extension", name=op.f("uq_users_voip_extension")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index("ix_users_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_users_email_key_id", ["email_key", "id"], unique=False)
        batch_op.create_index("ix_users_last_login_key_id", ["last_login_key", "id"], unique=False)
        batch_op.create_index("ix_users_name_key_id", ["name_key", "id"], unique=False)
        batch_op.create_index(
            "ix_users_status_created_at_id", ["status", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_users_status_email_key_id", ["status", "email_key", "id"], unique=False
        )
        batch_op.create_index("ix_users_status_id", ["status", "id"], unique=False)
        batch_op.create_index(
            "ix_users_status_last_login_key_id", ["status", "last_login_key", "id"], unique=False
        )
        batch_op.create_index(
            "ix_users_status_name_key_id", ["status", "name_key", "id"], unique=False
        )
        batch_op.create_index(
            "ix_users_status_username_key_id", ["status", "username_key", "id"], unique=False
        )
        batch_op.create_index("ix_users_username_key_id", ["username_key", "id"], unique=False)

    op.create_table(
        "workspace",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("seat_limit", sa.Integer(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_workspace_single_row")),
        sa.CheckConstraint(
            "seat_limit IS NULL OR seat_limit >= 0",
            name=op.f("ck_workspace_seat_limit_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace")),
    )
    op.create_table(
        "api_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("digest", name=op.f("uq_api_tokens_digest")),
        sa.UniqueConstraint("public_id", name=op.f("uq_api_tokens_public_id")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_api_tokens_user_id", ["user_id"], unique=False)

    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("role_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["role_id"], ["roles.id"], name=op.f("fk_user_roles_role_id_roles"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_roles_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "role_id", name=op.f("pk_user_roles")),
    )
    with op.batch_alter_table("user_roles", schema=None) as batch_op:
        batch_op.create_index("ix_user_roles_role_id_user_id", ["role_id", "user_id"], unique=False)

    _create_search_index()
    _seed()


def _sort_key(length: int) -> sa.String:
    """Compared bytewise on PostgreSQL, as on SQLite, whatever the database's locale."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _create_search_index() -> None:
    """Substring search over users.search_text through a trigram index on either database."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_users_search_text_trgm ON users USING gin (search_text gin_trgm_ops)"
        )
        return
    # An external-content FTS5 table with the trigram tokenizer, kept in step by triggers.
    op.execute(
        "CREATE VIRTUAL TABLE users_search USING fts5("
        "search_text, content='users', content_rowid='id', tokenize='trigram')"
    )
    op.execute(
        "CREATE TRIGGER users_search_ai AFTER INSERT ON users BEGIN "
        "INSERT INTO users_search(rowid, search_text) VALUES (new.id, new.search_text); END"
    )
    op.execute(
        "CREATE TRIGGER users_search_ad AFTER DELETE ON users BEGIN "
        "INSERT INTO users_search(users_search, rowid, search_text) "
        "VALUES ('delete', old.id, old.search_text); END"
    )
    op.execute(
        "CREATE TRIGGER users_search_au AFTER UPDATE OF search_text ON users BEGIN "
        "INSERT INTO users_search(users_search, rowid, search_text) "
        "VALUES ('delete', old.id, old.search_text); "
        "INSERT INTO users_search(rowid, search_text) VALUES (new.id, new.search_text); END"
    )


_BUILT_IN_ROLES = {
    "owner": (
        "Primary administrator: every permission, including acting on owners",
        [
            "users.read",
            "users.create",
            "users.edit",
            "users.deactivate",
            "users.delete",
            "users.reset_credentials",
            "roles.assign",
            "roles.manage",
            "settings.manage",
            "audit.read",
            "seats.read",
            "owners.manage",
            "profile.edit",
        ],
    ),
    "admin": (
        "Administrator: everything except acting on owners or granting the owner role",
        [
            "users.read",
            "users.create",
            "users.edit",
            "users.deactivate",
            "users.delete",
            "users.reset_credentials",
            "roles.assign",
            "roles.manage",
            "settings.manage",
            "audit.read",
            "seats.read",
            "profile.edit",
        ],
    ),
    "user-manager": (
        "Creates, edits, deactivates and resets users; no settings, no role administration",
        [
            "users.read",
            "users.create",
            "users.edit",
            "users.deactivate",
            "users.reset_credentials",
            "roles.assign",
            "seats.read",
            "profile.edit",
        ],
    ),
    "user": ("A member of the workspace: self-service only", ["profile.edit"]),
    "guest": ("A guest: no administrative or self-service permissions", []),
    "bot": ("An automated account", []),
}


def _seed() -> None:
    """The built-in roles as this revision defines them, the workspace row, zeroed counters."""
    now = sa.func.current_timestamp()
    roles = sa.table(
        "roles",
        sa.column("name", sa.String),
        sa.column("description", sa.String),
        sa.column("permissions", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
        sa.column("built_in", sa.Boolean),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    for name, (description, permissions) in _BUILT_IN_ROLES.items():
        op.execute(
            roles.insert().values(
                name=name,
                description=description,
                permissions=permissions,
                built_in=True,
                created_at=now,
                updated_at=now,
            )
        )
    op.execute("INSERT INTO workspace (id, name, seat_limit) VALUES (1, 'My Workspace', NULL)")
    for status in ("pending", "active", "deactivated"):
        for user_type in ("human", "bot"):
            op.execute(
                "INSERT INTO user_counts (status, type, count) "
                f"VALUES ('{status}', '{user_type}', 0)"
            )


def downgrade() -> None:
    for table in (
        "user_roles",
        "api_tokens",
        "workspace",
        "users",
        "user_counts",
        "roles",
        "outbox",
        "audit_entries",
    ):
        if table == "users" and op.get_bind().dialect.name == "sqlite":
            op.execute("DROP TABLE users_search")
        op.drop_table(table)
