"""directory attributes identity providers send over SCIM, and a row version for ETags

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

Plain ADD COLUMN on both databases: SQLite accepts a REFERENCES clause on an added column
whose default is NULL, and a batch rebuild of users would drop its search triggers.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PROVISION = "users.provision"

TEXT_COLUMNS = {
    "external_id": 255,
    "formatted_name": 200,
    "title": 200,
    "employment_type": 100,
    "locale": 35,
    "email_type": 20,
    "employee_number": 100,
    "department": 200,
    "organization": 200,
}


def upgrade() -> None:
    for name, length in TEXT_COLUMNS.items():
        op.add_column("users", sa.Column(name, sa.String(length), nullable=True))
    op.add_column("users", sa.Column("email_primary", sa.Boolean(), nullable=True))
    op.add_column(
        "users",
        sa.Column("name_derived", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    if op.get_bind().dialect.name == "sqlite":
        # Alembic would rebuild the table for the foreign key; SQLite adds it in place. A
        # downgrade on SQLite leaves the column (it cannot drop one with a foreign key).
        columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("users")}
        if "manager_id" not in columns:
            op.execute(
                "ALTER TABLE users ADD COLUMN manager_id INTEGER "
                "REFERENCES users (id) ON DELETE SET NULL"
            )
    else:
        # Usernames may be 64 characters now, and case folding can triple one (ﬃ → ffi).
        op.execute('ALTER TABLE users ALTER COLUMN username_key TYPE varchar(256) COLLATE "C"')
        op.add_column("users", sa.Column("manager_id", BigId, nullable=True))
        op.create_foreign_key(
            "fk_users_manager_id_users",
            "users",
            "users",
            ["manager_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.add_column("users", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    op.create_index("ix_users_external_id", "users", ["external_id"])
    op.create_index("ix_users_manager_id", "users", ["manager_id"])
    _grant_provisioning(add=True)


def _grant_provisioning(*, add: bool) -> None:
    """The built-in owner and admin roles hold every permission but owners.manage (for
    admins): so the new users.provision too."""
    roles = sa.table(
        "roles",
        sa.column("id", BigId),
        sa.column("name", sa.String()),
        sa.column("permissions", sa.JSON().with_variant(JSONB(), "postgresql")),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(roles.c.id, roles.c.permissions).where(roles.c.name.in_(("owner", "admin")))
    )
    for role_id, permissions in list(rows):
        held = [p for p in permissions if p != PROVISION]
        bind.execute(
            roles.update()
            .where(roles.c.id == role_id)
            .values(permissions=[*held, PROVISION] if add else held)
        )


def downgrade() -> None:
    _grant_provisioning(add=False)
    op.drop_index("ix_users_manager_id", table_name="users")
    op.drop_index("ix_users_external_id", table_name="users")
    columns = [*TEXT_COLUMNS, "email_primary", "name_derived", "version"]
    if op.get_bind().dialect.name == "sqlite":
        # In place: a batch rebuild of users would drop its search triggers, and its DROP
        # TABLE would run the children's ON DELETE actions. manager_id stays (see upgrade).
        for name in columns:
            op.execute(f"ALTER TABLE users DROP COLUMN {name}")
        return
    op.drop_constraint("fk_users_manager_id_users", "users", type_="foreignkey")
    for name in [*columns, "manager_id"]:
        op.drop_column("users", name)
    op.execute('ALTER TABLE users ALTER COLUMN username_key TYPE varchar(128) COLLATE "C"')
