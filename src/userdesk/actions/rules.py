"""The rules about who may act on whom, and the last owner. Shared by every user action."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.errors import Duplicate, InvalidInput, LastOwner, NotFound
from userdesk.models import Role, User, UserStatus, UserType, user_roles
from userdesk.queries.loading import user_joined
from userdesk.security.permissions import OWNER


def permissions_of(roles: Iterable[Role]) -> frozenset[str]:
    return frozenset(p for role in roles for p in role.permissions)


async def lock_user(session: AsyncSession, public_id: str) -> User:
    """Load a user with their roles and lock the row until the transaction ends."""
    # The row locked first, then the user read with their roles and creator in a statement
    # of its own: on PostgreSQL a locking statement that waited for a concurrent change sees
    # the user's row as committed but the joined rows (their roles) as they were before it,
    # and writing roles from that stale list failed (StaleDataError) or undid the change.
    locked = await session.scalar(
        select(User.id).where(User.public_id == public_id).with_for_update()
    )
    if locked is None:
        raise NotFound(f"no user with id {public_id}")
    user = (
        (
            await session.scalars(
                user_joined(select(User).where(User.id == locked)).execution_options(
                    populate_existing=True
                )
            )
        )
        .unique()
        .first()
    )
    if user is None:
        raise NotFound(f"no user with id {public_id}")
    return user


def ensure_can_act_on(actor: Actor, target: User, *, doing: str) -> None:
    """Nobody acts on a user whose roles carry a permission they lack (owners outrank admins)."""
    if actor.user_id == target.id:
        return
    actor.require_all(permissions_of(target.roles), doing=f"{doing} {target.username}")


def ensure_can_grant(actor: Actor, roles: Iterable[Role]) -> None:
    for role in roles:
        actor.require_all(role.permissions, doing=f"granting the role {role.name}")


def ensure_roles_fit(user_type: UserType, roles: Iterable[Role]) -> None:
    """Owners answer for the workspace: a bot, which takes no seat, cannot be one."""
    if user_type is UserType.BOT and any(role.name == OWNER for role in roles):
        raise InvalidInput.one("roles", "bot_owner", "a bot cannot hold the owner role")


async def lock_users(session: AsyncSession, public_ids: Iterable[str]) -> None:
    """Lock several users' rows in one statement, in row order, before acting on them one by
    one. An action on each locks its user, then (share-)locks that user's roles: taken user
    by user, a change of many members would hold a role while waiting for the next user,
    against the order workspace, users, roles, and deadlock with a role change of that user
    (which locks the user, then the owner role). Locked here first, the later user locks
    never wait."""
    ids = sorted(set(public_ids))
    if ids:
        await session.execute(
            select(User.id).where(User.public_id.in_(ids)).order_by(User.id).with_for_update()
        )


async def lock_roles_changing_hands(session: AsyncSession, names: Iterable[str]) -> dict[str, Role]:
    """Lock the roles a user gains or loses (FOR UPDATE, in row order, in one statement), as
    their membership count is raised (count_membership_changes). Exclusive from the start:
    a share lock raised later to an exclusive one deadlocks with a second change of the same
    role that took its share lock meanwhile. A concurrent delete_role waits for us too."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    locked = await session.scalars(
        select(Role).where(Role.name.in_(wanted)).order_by(Role.id).with_for_update()
    )
    return {role.name: role for role in locked}


async def count_membership_changes(session: AsyncSession, roles: Iterable[Role]) -> None:
    """Raise the version of each role someone gained or lost (locked by
    lock_roles_changing_hands): a group's ETag comes from it, and a digest of the holders
    cannot tell every two sets of members apart."""
    ids = sorted({role.id for role in roles})
    if ids:
        await session.execute(
            update(Role)
            .where(Role.id.in_(ids))
            .values(version=Role.version + 1)
            .execution_options(synchronize_session="fetch")
        )


async def roles_named(session: AsyncSession, names: Iterable[str], *, field: str) -> list[Role]:
    wanted = list(dict.fromkeys(names))
    # FOR SHARE: a concurrent delete_role (FOR UPDATE) waits for us, or we see the role gone.
    found = {
        r.name: r
        for r in await session.scalars(
            select(Role).where(Role.name.in_(wanted)).with_for_update(read=True)
        )
    }
    unknown = [n for n in wanted if n not in found]
    if unknown:
        raise InvalidInput.one(field, "unknown_role", f"unknown role: {', '.join(unknown)}")
    return [found[n] for n in wanted]


async def ensure_another_active_owner(session: AsyncSession, target: User, *, doing: str) -> None:
    """Refuse a change that would leave no active owner, if `target` is one of them.

    The owner role's row is locked first, so of two concurrent changes to the last two owners
    the second one counts after the first has committed and is refused.
    """
    if target.status is not UserStatus.ACTIVE or all(r.name != OWNER for r in target.roles):
        return
    owner_role_id = await session.scalar(
        select(Role.id).where(Role.name == OWNER).with_for_update()
    )
    others = await session.scalar(
        select(func.count())
        .select_from(user_roles)
        .join(User, User.id == user_roles.c.user_id)
        .where(
            user_roles.c.role_id == owner_role_id,
            User.status == UserStatus.ACTIVE,
            User.id != target.id,
        )
    )
    if not others:
        raise LastOwner(
            f"{doing} would leave the workspace without an active owner; "
            "make someone else an owner first"
        )


# Unique constraints by name (PostgreSQL reports it) and by column (SQLite reports that).
_UNIQUE_FIELDS = (
    ("uq_users_username_key", "users.username_key", "username"),
    ("uq_users_email_key", "users.email_key", "email"),
    ("uq_users_voip_extension", "users.voip_extension", "voip_extension"),
    ("uq_roles_name", "roles.name", "name"),
    ("uq_roles_display_name_key", "roles.display_name_key", "display_name"),
)


async def flush_unique(session: AsyncSession) -> None:
    """Flush, turning a unique violation a concurrent request slipped past our checks into
    Duplicate naming the field."""
    try:
        await session.flush()
    except IntegrityError as exc:
        message = str(exc.orig)
        for constraint, column, field in _UNIQUE_FIELDS:
            if constraint in message or f"UNIQUE constraint failed: {column}" in message:
                raise Duplicate(f"{field} is already taken", field=field) from exc
        raise
