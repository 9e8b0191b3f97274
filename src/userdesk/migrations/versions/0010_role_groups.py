"""roles as SCIM groups: a stable public id, a display name, an external id, a version

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29

Plain ADD COLUMN and CREATE INDEX on both databases: a batch rebuild of roles on SQLite
would drop and recreate the table, and its DROP would run user_roles' ON DELETE CASCADE.
So on SQLite the new columns stay nullable in the schema (the application always sets
them); PostgreSQL gets NOT NULL after the backfill.
"""

from __future__ import annotations

import unicodedata
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fold(value: str) -> str:
    """actions.inputs.role_key as of this revision (a migration keeps its own copy)."""
    nfkc = unicodedata.normalize("NFKC", value)
    return unicodedata.normalize("NFKC", nfkc.casefold())


def upgrade() -> None:
    op.add_column("roles", sa.Column("public_id", sa.String(36), nullable=True))
    op.add_column("roles", sa.Column("display_name", sa.String(256), nullable=True))
    op.add_column("roles", sa.Column("display_name_key", sa.String(1024), nullable=True))
    op.add_column("roles", sa.Column("external_id", sa.String(255), nullable=True))
    op.add_column("roles", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    roles = sa.table(
        "roles",
        sa.column("id", BigId),
        sa.column("name", sa.String()),
        sa.column("public_id", sa.String()),
        sa.column("display_name", sa.String()),
        sa.column("display_name_key", sa.String()),
    )
    bind = op.get_bind()
    for role_id, name in list(bind.execute(sa.select(roles.c.id, roles.c.name))):
        bind.execute(
            roles.update()
            .where(roles.c.id == role_id)
            .values(public_id=str(uuid.uuid4()), display_name=name, display_name_key=_fold(name))
        )
    if bind.dialect.name == "postgresql":
        for column in ("public_id", "display_name", "display_name_key"):
            op.alter_column("roles", column, nullable=False)
    op.create_index("uq_roles_public_id", "roles", ["public_id"], unique=True)
    op.create_index("uq_roles_display_name_key", "roles", ["display_name_key"], unique=True)
    op.create_index("ix_roles_external_id", "roles", ["external_id"])


def downgrade() -> None:
    op.drop_index("ix_roles_external_id", table_name="roles")
    op.drop_index("uq_roles_display_name_key", table_name="roles")
    op.drop_index("uq_roles_public_id", table_name="roles")
    for name in ("version", "external_id", "display_name_key", "display_name", "public_id"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE roles DROP COLUMN {name}")  # in place, as 0008 does
        else:
            op.drop_column("roles", name)
