"""Custom roles: create, edit, delete. Built-in roles are fixed by the migrations (their
external id, which identity providers set to match them, excepted)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import seats
from userdesk.actions import users as user_actions
from userdesk.actions.audit import AuditEvent, diff, record
from userdesk.actions.context import Actor
from userdesk.actions.inputs import ROLE_NAME_MAX, RoleCreate, RoleUpdate, role_key
from userdesk.actions.rules import flush_unique, lock_roles_changing_hands, lock_users
from userdesk.errors import BuiltInRole, Duplicate, InvalidInput, NotFound, RoleInUse
from userdesk.models import Role, User, Workspace, user_roles
from userdesk.security.permissions import DEFAULT_BOT_ROLE, DEFAULT_HUMAN_ROLE, Permission
from userdesk.services import services_of

# Members one request may add or take away: each is a user locked, their roles changed and
# an audit entry written, about 4 ms on SQLite, where the whole database waits for the one
# writer. 1,000 keeps a request to a few seconds; providers send a few hundred at a time.
MAX_MEMBER_CHANGES = 1_000


def _valid_permissions(permissions: list[str]) -> list[str]:
    known = {p.value for p in Permission}
    unknown = sorted(set(permissions) - known)
    if unknown:
        raise InvalidInput.one(
            "permissions", "unknown_permission", f"unknown permission: {', '.join(unknown)}"
        )
    return sorted(set(permissions))


async def _lock_role(session: AsyncSession, name: str) -> Role:
    role = await session.scalar(select(Role).where(Role.name == name).with_for_update())
    if role is None:
        raise NotFound(f"no role named {name}")
    return role


def _fields(role: Role) -> dict[str, object]:
    return {
        "name": role.name,
        "display_name": role.display_name,
        "external_id": role.external_id,
        "description": role.description,
        "permissions": role.permissions,
    }


# Names and display names are one namespace, compared by role_key: a display name may not
# be another role's name, nor a name another role's display name, or "ops" could show for a
# role other than ops, and a provider linking a group by displayName would find the wrong one.
# A unique index holds each column alone; the cross check is a read, so two roles created at
# the same moment could still cross (SCIM's writes are serialised by the workspace lock).


async def _ensure_display_name_free(
    session: AsyncSession, display_name: str, *, role_id: int | None = None
) -> str:
    key = role_key(display_name)
    await _ensure_free(session, key, display_name, field="display_name", role_id=role_id)
    return key


async def _ensure_name_free(
    session: AsyncSession, name: str, *, role_id: int | None = None
) -> None:
    await _ensure_free(session, role_key(name), name, field="name", role_id=role_id)


async def _ensure_free(
    session: AsyncSession, key: str, wanted: str, *, field: str, role_id: int | None
) -> None:
    """Refuse `wanted` when another role is named or displayed as it (by `key`)."""
    query = select(Role.name, Role.display_name).where(
        or_(Role.display_name_key == key, Role.name == key)
    )
    if role_id is not None:
        query = query.where(Role.id != role_id)
    taken = (await session.execute(query.limit(1))).first()
    if taken is None:
        return
    if taken.name == key:
        raise Duplicate(f"a role named {taken.name} already exists", field=field)
    raise Duplicate(
        f"the role {taken.name} is already displayed as {taken.display_name!r}", field=field
    )


async def _slug_for(session: AsyncSession, display_name: str) -> str:
    """A role name (lowercase ASCII letters, digits, '-') from a display name, made unique
    with a number: "Sales Team" -> sales-team, then sales-team-2."""
    ascii_text = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) < 2 or not slug[0].isalpha():
        slug = f"group-{slug}".rstrip("-")
    slug = slug[: ROLE_NAME_MAX - 8].rstrip("-")
    taken = set(await session.scalars(select(Role.name).where(Role.name.like(f"{slug}%"))))
    taken.update(
        await session.scalars(
            select(Role.display_name_key).where(Role.display_name_key.like(f"{slug}%"))
        )
    )
    candidate, n = slug, 1
    while candidate in taken:
        n += 1
        candidate = f"{slug}-{n}"
    return candidate


async def _ensure_may_change_holders(session: AsyncSession, actor: Actor, role: Role) -> None:
    """Changing a role's permissions grants or takes them from everyone holding it: that
    needs roles.assign, and no holder may outrank the editor (judged by every role held)."""
    actor.require(Permission.ROLES_ASSIGN)
    holders = select(user_roles.c.user_id).where(user_roles.c.role_id == role.id)
    co_held = (
        select(Role.permissions)
        .join(user_roles, user_roles.c.role_id == Role.id)
        .where(user_roles.c.user_id.in_(holders))
        .distinct()
    )
    held: set[str] = set()
    for permissions in await session.scalars(co_held):
        held.update(permissions)
    actor.require_all(held, doing=f"changing the permissions of everyone holding {role.name}")


async def create_role(session: AsyncSession, *, actor: Actor, data: RoleCreate) -> Role:
    actor.require(Permission.ROLES_MANAGE)
    permissions = _valid_permissions(data.permissions)
    actor.require_all(permissions, doing="creating a role with these permissions")
    if data.name is not None:
        await _ensure_name_free(session, data.name)
    display_name = data.display_name if data.display_name is not None else data.name
    assert display_name is not None  # RoleCreate has one or the other
    key = await _ensure_display_name_free(session, display_name)
    services = services_of(session)
    now = services.clock.now()
    role = Role(
        name=data.name if data.name is not None else await _slug_for(session, display_name),
        public_id=services.randomness.public_id(),
        display_name=display_name,
        display_name_key=key,
        external_id=data.external_id,
        description=data.description,
        permissions=permissions,
        built_in=False,
        created_at=now,
        updated_at=now,
    )
    session.add(role)
    await flush_unique(session)
    await record(
        session,
        actor=actor,
        event=AuditEvent.ROLE_CREATED,
        target_type="role",
        target_id=role.name,
        target_name=role.name,
        changes=diff({}, _fields(role)),
    )
    return role


def _rename_in_settings(workspace: Workspace, old: str, new: str | None) -> dict[str, Any]:
    """Keep two_factor_required_roles naming the same roles when one is renamed or deleted,
    so a rename can never drop the requirement. Returns the audit change, if any."""
    listed = list(workspace.two_factor_required_roles or [])
    if old not in listed:
        return {}
    kept = {n for n in listed if n != old}
    updated = sorted(kept | {new} if new is not None else kept)
    workspace.two_factor_required_roles = updated
    return {"two_factor_required_roles": {"before": listed, "after": updated}}


async def update_role(session: AsyncSession, *, actor: Actor, name: str, data: RoleUpdate) -> Role:
    actor.require(Permission.ROLES_MANAGE)
    # A rename may touch the workspace's settings: the workspace first, as every action locks.
    workspace = await seats.lock_workspace(session) if "name" in data.model_fields_set else None
    role = await _lock_role(session, name)
    before = _fields(role)
    fields = data.model_fields_set
    # The display name as it is, in another case ("Admin" for admin, as a provider that
    # linked the group by displayName sends it back): no change, the stored one kept.
    same_display_name = data.display_name is not None and (
        role_key(data.display_name) == role.display_name_key
    )
    if role.built_in:
        # Only the external id (an identity provider's handle on the group) may change.
        kept = {"external_id", "display_name"} if same_display_name else {"external_id"}
        changed = next(iter(sorted(_changes(role, data) - kept)), None)
        if changed is not None:
            what = changed.replace("_", " ")
            raise BuiltInRole(
                f"{role.name} is a built-in role and cannot be changed: its {what}", field="name"
            )
    actor.require_all(role.permissions, doing=f"changing the role {role.name}")
    if "permissions" in fields and data.permissions is not None:
        permissions = _valid_permissions(data.permissions)
        actor.require_all(permissions, doing="giving a role these permissions")
        if set(permissions) != set(role.permissions):
            await _ensure_may_change_holders(session, actor, role)
        role.permissions = permissions
    if "description" in fields and data.description is not None:
        role.description = data.description
    if "external_id" in fields:
        role.external_id = data.external_id
    if (
        "display_name" in fields
        and data.display_name is not None
        and data.display_name != role.display_name
        and not role.built_in
    ):
        key = await _ensure_display_name_free(session, data.display_name, role_id=role.id)
        role.display_name = data.display_name
        role.display_name_key = key
    if "name" in fields and data.name is not None and data.name != role.name:
        await _ensure_name_free(session, data.name, role_id=role.id)
        assert workspace is not None
        settings_change = _rename_in_settings(workspace, role.name, data.name)
        if "display_name" not in fields and role.display_name == role.name:
            # A display name nobody set apart from the name follows it.
            key = await _ensure_display_name_free(session, data.name, role_id=role.id)
            role.display_name, role.display_name_key = data.name, key
        role.name = data.name
    else:
        settings_change = {}
    changes = diff(before, _fields(role)) | settings_change
    if changes:
        role.updated_at = services_of(session).clock.now()
        await flush_unique(session)
        await record(
            session,
            actor=actor,
            event=AuditEvent.ROLE_UPDATED,
            target_type="role",
            target_id=role.name,
            target_name=role.name,
            changes=changes,
        )
    return role


def _changes(role: Role, data: RoleUpdate) -> set[str]:
    """The fields `data` sets to something other than what `role` holds."""
    current = _fields(role)
    changed = set()
    for field in data.model_fields_set:
        value = getattr(data, field)
        if field == "permissions" and value is not None:
            value, current[field] = set(value), set(role.permissions)
        if value != current[field]:
            changed.add(field)
    return changed


async def delete_role(session: AsyncSession, *, actor: Actor, name: str) -> None:
    actor.require(Permission.ROLES_MANAGE)
    workspace = await seats.lock_workspace(session)
    role = await _lock_role(session, name)
    if role.built_in:
        raise BuiltInRole(f"{role.name} is a built-in role and cannot be deleted", field="name")
    actor.require_all(role.permissions, doing=f"deleting the role {role.name}")
    holders = await session.scalar(
        select(func.count()).select_from(user_roles).where(user_roles.c.role_id == role.id)
    )
    if holders:
        raise RoleInUse(
            f"{holders} user(s) hold the role {role.name}; take it from them before deleting it",
            field="name",
        )
    settings_change = _rename_in_settings(workspace, role.name, None)
    await session.delete(role)
    await session.flush()
    await record(
        session,
        actor=actor,
        event=AuditEvent.ROLE_DELETED,
        target_type="role",
        target_id=role.name,
        target_name=role.name,
        changes={k: {"before": v, "after": None} for k, v in _fields(role).items()}
        | settings_change,
    )


def roles_moved_with(role: Role, *, losing: bool) -> list[str]:
    """The roles that granting or taking `role` from several users may lock: the role, and
    the plain ones revoke_role gives someone left with none. A change of many members locks
    them all first, in row order, after the users: taken member by member, in whatever
    order the members need them, they would deadlock with a role change locking the same
    roles in row order."""
    return [role.name, DEFAULT_HUMAN_ROLE, DEFAULT_BOT_ROLE] if losing else [role.name]


async def delete_role_taking_it_from_holders(
    session: AsyncSession, *, actor: Actor, name: str
) -> None:
    """Delete a custom role that people hold, as an identity provider deleting a group
    expects: the role is taken from each holder (revoke_role, each with its rules and audit
    entry; someone left with no role gets the plain one), then deleted. One transaction:
    a holder the rules keep (one the actor may not act on) refuses the whole deletion."""
    actor.require(Permission.ROLES_MANAGE)
    await seats.lock_workspace(session)
    role = await session.scalar(select(Role).where(Role.name == name))
    if role is None:
        raise NotFound(f"no role named {name}")
    if role.built_in:
        raise BuiltInRole(f"{role.name} is a built-in role and cannot be deleted", field="name")
    holders = list(
        await session.scalars(
            select(User.public_id)
            .join(user_roles, user_roles.c.user_id == User.id)
            .where(user_roles.c.role_id == role.id)
            .order_by(User.id)
        )
    )
    if len(holders) > MAX_MEMBER_CHANGES:
        raise InvalidInput.one(
            "members",
            "tooMany",
            f"{len(holders)} users hold the role {role.name}; at most {MAX_MEMBER_CHANGES} "
            "can lose it in one request: take it from some of them first "
            "(over SCIM, remove members in smaller PATCH requests)",
        )
    await lock_users(session, holders)
    await lock_roles_changing_hands(session, roles_moved_with(role, losing=bool(holders)))
    for public_id in holders:
        await user_actions.revoke_role(session, actor=actor, user_id=public_id, role=name)
    await delete_role(session, actor=actor, name=name)
