"""Users, roles and the link between them."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    event,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship, validates

from userdesk.models.base import Base, JSONDocument, UTCDateTime

# BigInteger for PostgreSQL's range, INTEGER on SQLite so the id is the rowid (autoincrement).
BigId = BigInteger().with_variant(Integer(), "sqlite")
# The last_login_key of someone who never signed in: "never" sorts as the oldest sign-in.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def SortKey(length: int) -> String:  # noqa: N802 - a column type, named like one
    """Text compared bytewise on PostgreSQL (as SQLite does), whatever the database's locale,
    so sort order and keyset cursors agree on both databases."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class UserStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


class UserType(StrEnum):
    HUMAN = "human"
    BOT = "bot"


class AvatarKind(StrEnum):
    INITIALS = "initials"
    URL = "url"
    UPLOAD = "upload"


def _enum(cls: type[StrEnum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


user_roles = Table(
    "user_roles",
    Base.metadata,
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", BigId, ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_user_roles_role_id_user_id", "role_id", "user_id"),
)


class Role(Base):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # SCIM's group id: never changes, whatever the role is renamed to.
    public_id: Mapped[str] = mapped_column(String(36))
    # What identity providers call the group ("Sales Team"); unique by its folded key.
    display_name: Mapped[str] = mapped_column(String(256))
    display_name_key: Mapped[str] = mapped_column(String(1024))
    external_id: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(500), default="")
    permissions: Mapped[list[str]] = mapped_column(JSONDocument)
    built_in: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Raised by every change of the row (see bump_role_version) and for every user gaining
    # or losing the role (rules.count_membership_changes): a group's ETag.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __table_args__ = (
        Index("uq_roles_public_id", "public_id", unique=True),
        Index("uq_roles_display_name_key", "display_name_key", unique=True),
        Index("ix_roles_external_id", "external_id"),
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True)
    username: Mapped[str] = mapped_column(String(64))
    # Case-folded NFC forms carry the uniqueness and the sort order.
    username_key: Mapped[str] = mapped_column(SortKey(256), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(SortKey(1024), unique=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(SortKey(400))
    given_name: Mapped[str | None] = mapped_column(String(200))
    family_name: Mapped[str | None] = mapped_column(String(200))
    nickname: Mapped[str | None] = mapped_column(String(200))
    bio: Mapped[str | None] = mapped_column(Text)
    status_message: Mapped[str | None] = mapped_column(String(500))
    voip_extension: Mapped[str | None] = mapped_column(String(32), unique=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    avatar_kind: Mapped[AvatarKind] = mapped_column(
        _enum(AvatarKind, "avatar_kind"), default=AvatarKind.INITIALS
    )
    avatar_url: Mapped[str | None] = mapped_column(String(2048))
    type: Mapped[UserType] = mapped_column(_enum(UserType, "user_type"), default=UserType.HUMAN)
    status: Mapped[UserStatus] = mapped_column(_enum(UserStatus, "user_status"))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    require_password_change: Mapped[bool] = mapped_column(Boolean, default=False)
    # One-time password-reset links issued before this moment are dead.
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # TOTP secrets, sealed with the server's key (security/sealing.py). The pending one waits
    # for a first valid code; totp_last_step refuses a code's replay within its window.
    totp_secret: Mapped[str | None] = mapped_column(String(500))
    totp_pending_secret: Mapped[str | None] = mapped_column(String(500))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # When the user's E2EE keys (table e2e_keys) were stored; None when there are none.
    e2e_keys_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # name, username and email folded into one string: the single column both databases'
    # trigram indexes cover, so a substring search is one index lookup.
    search_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # last_login_at with "never" as NEVER: a sort key without NULLs, so one plain index
    # serves both directions on both databases and keyset cursors need no NULL cases.
    last_login_key: Mapped[datetime] = mapped_column(UTCDateTime, default=NEVER)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )
    # Directory attributes, as identity providers send them over SCIM (migration 0008).
    # name_derived: nobody set `name`; it was made from other names (an identity provider
    # sent no displayName), so SCIM shows no displayName.
    name_derived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    external_id: Mapped[str | None] = mapped_column(String(255))
    formatted_name: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    # SCIM's userType: the relationship to the organisation ("Employee", "Contractor").
    employment_type: Mapped[str | None] = mapped_column(String(100))
    locale: Mapped[str | None] = mapped_column(String(35))
    # The address's label (work, home, other) and whether the provider marked it primary.
    email_type: Mapped[str | None] = mapped_column(String(20))
    email_primary: Mapped[bool | None] = mapped_column(Boolean)
    employee_number: Mapped[str | None] = mapped_column(String(100))
    department: Mapped[str | None] = mapped_column(String(200))
    organization: Mapped[str | None] = mapped_column(String(200))
    manager_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL")
    )
    # Raised by every change of the row (see bump_version): SCIM's ETag.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    roles: Mapped[list[Role]] = relationship(secondary=user_roles, lazy="raise", order_by=Role.name)
    created_by: Mapped[User | None] = relationship(
        remote_side=[id], lazy="raise", foreign_keys=[created_by_id]
    )
    manager: Mapped[User | None] = relationship(
        remote_side=[id], lazy="raise", foreign_keys=[manager_id]
    )

    @validates("last_login_at")
    def _keep_last_login_key(self, _key: str, value: datetime | None) -> datetime | None:
        self.last_login_key = value or NEVER
        return value

    # The name-order indexes also carry the search text and status (migration 0006: INCLUDE
    # columns on PostgreSQL, appended to the key on SQLite), so a search walks them alone.
    __table_args__ = tuple(
        Index(
            f"ix_users_{'status_' if with_status else ''}{column}_id",
            *cols,
            "id",
            postgresql_include=(
                ([] if with_status else ["status"]) + ["search_text"]
                if column == "name_key"
                else []
            ),
        )
        for column in ("name_key", "username_key", "email_key", "created_at", "last_login_key")
        for with_status, cols in ((False, (column,)), (True, ("status", column)))
    ) + (
        Index("ix_users_status_id", "status", "id"),
        Index("ix_users_external_id", "external_id"),
        Index("ix_users_manager_id", "manager_id"),
    )


@event.listens_for(Role, "before_update")
def bump_role_version(_mapper: object, _connection: object, role: Role) -> None:
    """As bump_version, for roles."""
    session = object_session(role)
    if session is not None and session.is_modified(role, include_collections=False):
        role.version = Role.version + 1  # type: ignore[assignment]


@event.listens_for(User, "before_update")
def bump_version(_mapper: object, _connection: object, user: User) -> None:
    """Every change of a user row raises its version, in SQL (version + 1), so two writers
    never write the same number; the attribute is read back when next needed. A flush of a
    user whose values were set again unchanged changes nothing, the version included."""
    session = object_session(user)
    if session is not None and session.is_modified(user, include_collections=False):
        user.version = User.version + 1  # type: ignore[assignment]
