"""Every change to a user: create, update, roles, deactivate, activate, delete."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import seats
from userdesk.actions.audit import AuditEvent, diff, record_for_user
from userdesk.actions.context import Actor
from userdesk.actions.inputs import (
    DIRECTORY_FIELDS,
    SELF_SERVICE_FIELDS,
    UserCreate,
    UserUpdate,
    email_key,
    fold,
    sort_key,
)
from userdesk.actions.outbox import enqueue_email
from userdesk.actions.passwords import check_password, end_access, store_password
from userdesk.actions.rules import (
    count_membership_changes,
    ensure_another_active_owner,
    ensure_can_act_on,
    ensure_can_grant,
    ensure_roles_fit,
    flush_unique,
    lock_roles_changing_hands,
    lock_user,
)
from userdesk.errors import Conflict, Duplicate, InvalidInput, PermissionDenied
from userdesk.models import (
    AvatarImage,
    AvatarKind,
    Invitation,
    User,
    UserStatus,
    UserType,
)
from userdesk.queries.users import owner_exists
from userdesk.security.images import normalise_avatar
from userdesk.security.permissions import DEFAULT_BOT_ROLE, DEFAULT_HUMAN_ROLE, OWNER, Permission
from userdesk.services import services_of

# What the audit log shows of a user (never the password hash).
AUDITED_FIELDS = (
    "username",
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "nickname",
    "bio",
    "status_message",
    "voip_extension",
    "timezone",
    "avatar_kind",
    "avatar_url",
    "type",
    "status",
    "require_password_change",
    "external_id",
    "name_derived",
    "formatted_name",
    "title",
    "employment_type",
    "locale",
    "email_type",
    "email_primary",
    "employee_number",
    "department",
    "organization",
)
CREDENTIAL_FIELDS = frozenset({"password", "require_password_change"})


def snapshot(user: User) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in AUDITED_FIELDS:
        value = getattr(user, field)
        values[field] = value.value if hasattr(value, "value") else value
    return values


def search_text(name: str, username: str, email: str) -> str:
    return "\n".join((fold(name), fold(username), fold(email)))


def derived_name(
    formatted_name: str | None, given_name: str | None, family_name: str | None, username: str
) -> str:
    """The name of a user nobody named (an identity provider sent no displayName): the
    formatted name, else the given and family names, else the username."""
    joined = " ".join(p for p in (given_name, family_name) if p)
    return formatted_name or joined or username


async def _manager_for(session: AsyncSession, user: User, manager_id: str | None) -> User | None:
    """The user named as `user`'s manager (by user id), or None to clear it."""
    if manager_id is None:
        return None
    if manager_id == user.public_id:
        raise InvalidInput.one("manager", "self", "a user cannot be their own manager")
    with session.no_autoflush:  # the changed row is checked for uniqueness before it is written
        manager = await session.scalar(select(User).where(User.public_id == manager_id))
    if manager is None:
        raise InvalidInput.one("manager", "unknown_user", f"no user with id {manager_id}")
    return manager


async def _set_manager(session: AsyncSession, user: User, manager_id: str | None) -> dict[str, Any]:
    """Point `user` at their manager; the audit change, by user ids (empty if unchanged)."""
    before = user.manager.public_id if user.manager is not None else None
    manager = await _manager_for(session, user, manager_id)
    if before == manager_id:
        return {}
    user.manager = manager
    return {"manager": {"before": before, "after": manager_id}}


def _set_profile(user: User, values: dict[str, Any]) -> None:
    for field, value in values.items():
        if field == "avatar_url":
            user.avatar_url = value
            user.avatar_kind = AvatarKind.URL if value else AvatarKind.INITIALS
        else:
            setattr(user, field, value)
    user.name_key = sort_key(user.name)
    user.username_key = fold(user.username)
    user.email_key = email_key(user.email)
    user.search_text = search_text(user.name, user.username, user.email)


async def _ensure_unique(
    session: AsyncSession, user: User, fields: set[str], *, exclude_id: int | None
) -> None:
    checks = []
    if "username" in fields:
        checks.append(("username", User.username_key == fold(user.username)))
    if "email" in fields:
        checks.append(("email", User.email_key == email_key(user.email)))
    if "voip_extension" in fields and user.voip_extension:
        checks.append(("voip_extension", User.voip_extension == user.voip_extension))
    if not checks:
        return
    query = select(User.username_key, User.email_key, User.voip_extension).where(
        or_(*(condition for _, condition in checks))
    )
    if exclude_id is not None:
        query = query.where(User.id != exclude_id)
    with session.no_autoflush:  # the changed row must not be written before it is checked
        rows = list(await session.execute(query))
    for row in rows:
        if "username" in fields and row.username_key == fold(user.username):
            raise Duplicate(f"username {user.username!r} is already taken", field="username")
        if "email" in fields and row.email_key == email_key(user.email):
            raise Duplicate(f"email {user.email!r} is already in use", field="email")
        raise Duplicate(
            f"voip_extension {user.voip_extension!r} is already in use", field="voip_extension"
        )


async def create_user(
    session: AsyncSession, *, actor: Actor, data: UserCreate, active: bool = True
) -> User:
    """Create a user. Bots do not sign in, so they start active; people stay pending until
    their first sign-in. `active=False` creates them deactivated (an identity provider
    provisioning someone who has left): no seat taken, and it needs users.deactivate."""
    if not active:
        actor.require(Permission.USERS_DEACTIVATE)
        return await _create(session, actor, data, UserStatus.DEACTIVATED)
    status = UserStatus.ACTIVE if data.type is UserType.BOT else UserStatus.PENDING
    return await _create(session, actor, data, status)


async def bootstrap_owner(session: AsyncSession, *, actor: Actor, data: UserCreate) -> User:
    """The operator's first (or an extra) owner, created active: the rule that at least one
    active owner exists must hold from the very first account. The operator vouches for the
    address, so a workspace that requires verified emails never locks its owner out."""
    if not actor.is_system:
        raise PermissionDenied("only the operator, from the command line, creates owners this way")
    return await _create(
        session,
        actor,
        data.model_copy(update={"roles": [OWNER], "email_verified": True}),
        UserStatus.ACTIVE,
    )


async def create_first_owner(
    session: AsyncSession, *, actor: Actor, data: UserCreate
) -> User | None:
    """On a workspace without an owner, create one (active); otherwise do nothing. The
    workspace lock makes two servers starting on an empty database create one owner."""
    await seats.lock_workspace(session)
    if await owner_exists(session):
        return None
    return await bootstrap_owner(session, actor=actor, data=data)


async def _create(
    session: AsyncSession, actor: Actor, data: UserCreate, status: UserStatus
) -> User:
    actor.require(Permission.USERS_CREATE)
    services = services_of(session)
    default_role = DEFAULT_BOT_ROLE if data.type is UserType.BOT else DEFAULT_HUMAN_ROLE
    if data.roles and data.roles != [default_role]:
        actor.require(Permission.ROLES_ASSIGN)
    # The workspace before the roles: the lock order every action keeps (workspace, users,
    # roles), or this would deadlock with a deactivation that locks the owner role.
    workspace = await seats.lock_workspace(session)
    wanted = list(dict.fromkeys(data.roles or [default_role]))
    granted = await lock_roles_changing_hands(session, wanted)
    unknown = [n for n in wanted if n not in granted]
    if unknown:
        raise InvalidInput.one("roles", "unknown_role", f"unknown role: {', '.join(unknown)}")
    roles = [granted[n] for n in wanted]
    ensure_can_grant(actor, roles)
    ensure_roles_fit(data.type, roles)
    if seats.takes_seat(status, data.type):
        await seats.ensure_free_seat(session, workspace)
    if data.password:
        await check_password(session, data.password, username=data.username, email=data.email)
    await count_membership_changes(session, roles)

    now = services.clock.now()
    user = User(
        public_id=services.randomness.public_id(),
        type=data.type,
        status=status,
        email_verified=data.email_verified,
        voip_extension=data.voip_extension,
        require_password_change=data.require_password_change,
        password_hash=await services.passwords.hash(data.password) if data.password else None,
        password_changed_at=now if data.password else None,
        avatar_kind=AvatarKind.INITIALS,
        created_at=now,
        updated_at=now,
        created_by=await session.get(User, actor.user_id) if actor.user_id else None,
        roles=roles,
    )
    profile = data.model_dump(
        include=set(SELF_SERVICE_FIELDS | DIRECTORY_FIELDS | {"username", "email"}) - {"manager"}
    )
    profile["name_derived"] = bool(data.name_derived)
    if data.name_derived:
        profile["name"] = derived_name(
            data.formatted_name, data.given_name, data.family_name, data.username
        )
    _set_profile(user, profile)
    user.manager = await _manager_for(session, user, data.manager)
    if status is UserStatus.DEACTIVATED:
        user.deactivated_at = now
    await _ensure_unique(session, user, {"username", "email", "voip_extension"}, exclude_id=None)
    session.add(user)
    await flush_unique(session)
    await seats.move(session, user.type, None, user.status)
    # An open invitation for this address is moot now that the address is a member.
    await session.execute(
        update(Invitation)
        .where(
            Invitation.email_key == user.email_key,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )

    changes = diff({}, snapshot(user))
    changes["roles"] = {"before": None, "after": sorted(r.name for r in roles)}
    if user.manager is not None:
        changes["manager"] = {"before": None, "after": user.manager.public_id}
    if data.password:
        changes["password"] = {"changed": True}
    if data.send_welcome_email:
        changes["welcome_email"] = {"before": None, "after": "queued"}
        await _queue_welcome(session, user)
    from userdesk.actions.recovery import after_email_set  # recovery builds on this module

    changes.update(await after_email_set(session, user, created=True))
    await record_for_user(
        session, actor=actor, event=AuditEvent.USER_CREATED, user=user, changes=changes
    )
    return user


async def _queue_welcome(session: AsyncSession, user: User) -> None:
    await enqueue_email(
        session,
        template="welcome",
        to=user.email,
        context={"user_id": user.public_id, "name": user.name, "username": user.username},
    )


async def send_welcome_email(session: AsyncSession, *, actor: Actor, user_id: str) -> User:
    """Email a user the welcome message again (the Edit panel's "Send welcome email")."""
    actor.require(Permission.USERS_EDIT)
    user = await lock_user(session, user_id)
    ensure_can_act_on(actor, user, doing="emailing")
    if user.type is UserType.BOT:
        raise Conflict("a bot gets no welcome email")
    if user.status is UserStatus.DEACTIVATED:
        raise Conflict("the user is deactivated; activate them before welcoming them")
    await _queue_welcome(session, user)
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.WELCOME_EMAIL_SENT,
        user=user,
        changes={"welcome_email": {"before": None, "after": "queued"}},
    )
    return user


def _require_edit_permissions(actor: Actor, user_id: str, fields: set[str]) -> None:
    """Own profile fields need profile.edit; anything else, on anyone, needs users.edit;
    password fields need users.reset_credentials. Checked before the target is even loaded,
    so a refused caller learns nothing about it, not even whether it exists."""
    credential_fields = fields & CREDENTIAL_FIELDS
    profile_fields = fields - credential_fields
    if profile_fields or not credential_fields:
        own_profile_only = actor.public_id == user_id and profile_fields <= SELF_SERVICE_FIELDS
        if own_profile_only and not actor.has(Permission.USERS_EDIT):
            actor.require(Permission.PROFILE_EDIT)
        else:
            actor.require(Permission.USERS_EDIT)
    if credential_fields:
        actor.require(Permission.USERS_RESET_CREDENTIALS)


async def update_user(
    session: AsyncSession, *, actor: Actor, user_id: str, data: UserUpdate
) -> User:
    fields = set(data.model_fields_set)
    credential_fields = fields & CREDENTIAL_FIELDS
    _require_edit_permissions(actor, user_id, fields)
    user = await lock_user(session, user_id)
    ensure_can_act_on(actor, user, doing="editing")

    before = snapshot(user)
    values = data.model_dump(include=fields - credential_fields - {"manager"})
    if "email" in values and email_key(values["email"]) != user.email_key:
        # A new address is unverified unless the same request vouches for it.
        values.setdefault("email_verified", False)
    if "name" in values and "name_derived" not in values:
        values["name_derived"] = False  # a name set by hand
    if "name_derived" in values:
        values["name_derived"] = bool(values["name_derived"])
    _set_profile(user, values)
    if user.name_derived and "name" not in values:
        # Nobody named them: the name follows the names it was made from.
        user.name = derived_name(
            user.formatted_name, user.given_name, user.family_name, user.username
        )
        _set_profile(user, {})
    manager_change = await _set_manager(session, user, data.manager) if "manager" in fields else {}
    await _ensure_unique(session, user, fields, exclude_id=user.id)
    ended = None
    if "password" in fields:
        assert data.password is not None
        await check_password(session, data.password, username=user.username, email=user.email)
        await store_password(session, user, data.password)
        if actor.user_id != user.id:
            # Someone else set it: a reset, which ends every session and token of the user.
            ended = await end_access(session, user, now=services_of(session).clock.now())
    if "require_password_change" in fields:
        user.require_password_change = bool(data.require_password_change)
    if "avatar_url" in fields:
        await session.execute(delete(AvatarImage).where(AvatarImage.user_id == user.id))

    changes = diff(before, snapshot(user)) | manager_change
    if "password" in fields:
        changes["password"] = {"changed": True}
    if ended is not None:
        changes["sessions"] = {"before": ended, "after": 0}
    if not changes:
        return user
    user.updated_at = services_of(session).clock.now()
    await flush_unique(session)
    if "email" in changes:
        from userdesk.actions.recovery import after_email_set  # recovery builds on this module

        changes.update(await after_email_set(session, user))
    await record_for_user(
        session, actor=actor, event=AuditEvent.USER_UPDATED, user=user, changes=changes
    )
    return user


async def set_avatar_image(
    session: AsyncSession, *, actor: Actor, user_id: str, image: bytes
) -> User:
    """Store an uploaded picture, checked and resized, as the user's avatar."""
    _require_edit_permissions(actor, user_id, {"avatar_url"})
    user = await lock_user(session, user_id)
    ensure_can_act_on(actor, user, doing="editing")
    png = normalise_avatar(image)
    now = services_of(session).clock.now()
    stored = await session.get(AvatarImage, user.id)
    previous = stored.digest if stored is not None else None
    if stored is None:
        stored = AvatarImage(user_id=user.id)
        session.add(stored)
    stored.content_type = "image/png"
    stored.data = png
    stored.digest = hashlib.sha256(png).hexdigest()
    stored.updated_at = now
    before = snapshot(user)
    user.avatar_kind = AvatarKind.UPLOAD
    user.avatar_url = None
    user.updated_at = now
    await session.flush()
    changes = diff(before, snapshot(user))
    changes["avatar_image"] = {"before": previous, "after": stored.digest}
    await record_for_user(
        session, actor=actor, event=AuditEvent.USER_UPDATED, user=user, changes=changes
    )
    return user


async def set_roles(session: AsyncSession, *, actor: Actor, user_id: str, roles: list[str]) -> User:
    """Replace a user's roles (at least one)."""
    actor.require(Permission.ROLES_ASSIGN)
    if not roles:
        raise InvalidInput.one("roles", "required", "a user needs at least one role")
    user = await lock_user(session, user_id)
    ensure_can_act_on(actor, user, doing="changing the roles of")
    held = {r.name: r for r in user.roles}
    wanted = list(dict.fromkeys(roles))
    # The roles kept are held already (a deletion waits for this user's lock): read, not locked.
    changing = await lock_roles_changing_hands(session, set(wanted) ^ set(held))
    unknown = [n for n in wanted if n not in changing and n not in held]
    if unknown:
        raise InvalidInput.one("roles", "unknown_role", f"unknown role: {', '.join(unknown)}")
    new_roles = [changing.get(n) or held[n] for n in wanted]
    ensure_roles_fit(user.type, new_roles)
    old_names = set(held)
    new_names = set(wanted)
    if old_names == new_names:
        return user
    changed = list(changing.values())
    ensure_can_grant(actor, changed)
    if OWNER not in new_names:
        await ensure_another_active_owner(session, user, doing="removing the owner role")
    before = sorted(old_names)
    await count_membership_changes(session, changed)
    user.roles = new_roles
    user.updated_at = services_of(session).clock.now()
    await session.flush()
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.USER_ROLES_CHANGED,
        user=user,
        changes={"roles": {"before": before, "after": sorted(new_names)}},
    )
    return user


async def grant_role(session: AsyncSession, *, actor: Actor, user_id: str, role: str) -> User:
    """Give one role and keep the others (Make Admin): read under the user's lock, so a role
    change committed meanwhile is not undone."""
    actor.require(Permission.ROLES_ASSIGN)
    user = await lock_user(session, user_id)
    names = [r.name for r in user.roles]
    if role in names:
        return user
    return await set_roles(session, actor=actor, user_id=user_id, roles=[*names, role])


async def revoke_role(session: AsyncSession, *, actor: Actor, user_id: str, role: str) -> User:
    """Take one role away and keep the others (Remove Admin); a user left with none gets
    the plain role of their kind."""
    actor.require(Permission.ROLES_ASSIGN)
    user = await lock_user(session, user_id)
    rest = [r.name for r in user.roles if r.name != role]
    if len(rest) == len(user.roles):
        return user
    plain = DEFAULT_BOT_ROLE if user.type is UserType.BOT else DEFAULT_HUMAN_ROLE
    return await set_roles(session, actor=actor, user_id=user_id, roles=rest or [plain])


async def deactivate_user(session: AsyncSession, *, actor: Actor, user_id: str) -> User:
    """Keep the user's data, end their access: status deactivated, every token revoked."""
    actor.require(Permission.USERS_DEACTIVATE)
    await seats.lock_workspace(session)
    user = await lock_user(session, user_id)
    ensure_can_act_on(actor, user, doing="deactivating")
    if user.status is UserStatus.DEACTIVATED:
        return user
    await ensure_another_active_owner(session, user, doing="deactivating this user")
    now = services_of(session).clock.now()
    before = user.status
    user.status = UserStatus.DEACTIVATED
    user.deactivated_at = now
    user.updated_at = now
    await seats.move(session, user.type, before, user.status)
    await end_access(session, user, now=now)
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.USER_DEACTIVATED,
        user=user,
        changes={"status": {"before": before.value, "after": user.status.value}},
    )
    return user


async def activate_user(session: AsyncSession, *, actor: Actor, user_id: str) -> User:
    """Give a deactivated user their access back; someone who never signed in is pending."""
    actor.require(Permission.USERS_DEACTIVATE)
    workspace = await seats.lock_workspace(session)
    user = await lock_user(session, user_id)
    ensure_can_act_on(actor, user, doing="activating")
    if user.status is not UserStatus.DEACTIVATED:
        return user
    returning = (
        UserStatus.ACTIVE
        if user.type is UserType.BOT or user.last_login_at is not None
        else UserStatus.PENDING
    )
    if seats.takes_seat(returning, user.type):
        await seats.ensure_free_seat(session, workspace)
    user.status = returning
    user.deactivated_at = None
    user.updated_at = services_of(session).clock.now()
    await seats.move(session, user.type, UserStatus.DEACTIVATED, user.status)
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.USER_ACTIVATED,
        user=user,
        changes={"status": {"before": UserStatus.DEACTIVATED.value, "after": returning.value}},
    )
    return user


async def delete_user(session: AsyncSession, *, actor: Actor, user_id: str) -> None:
    """Delete permanently: the row, its roles and tokens go; audit entries keep snapshots."""
    actor.require(Permission.USERS_DELETE)
    await seats.lock_workspace(session)
    user = await lock_user(session, user_id)
    if actor.user_id == user.id:
        raise Conflict("you cannot delete your own account; ask another administrator")
    ensure_can_act_on(actor, user, doing="deleting")
    # Forget "created by" first, in users' row order (workspace, users, owner role): left to
    # the foreign key's ON DELETE SET NULL it would lock those rows after the owner role's
    # and deadlock with a concurrent role change of a user this one created.
    await session.execute(
        update(User).where(User.created_by_id == user.id).values(created_by_id=None)
    )
    await session.execute(
        update(User)
        .where(User.manager_id == user.id)
        .values(manager_id=None, version=User.version + 1)
    )
    await lock_roles_changing_hands(session, [r.name for r in user.roles])
    await count_membership_changes(session, user.roles)
    await ensure_another_active_owner(session, user, doing="deleting this user")
    final = snapshot(user)
    final["roles"] = [r.name for r in user.roles]
    await seats.move(session, user.type, user.status, None)
    await session.delete(user)
    await session.flush()
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.USER_DELETED,
        user=user,
        changes={k: {"before": v, "after": None} for k, v in final.items()},
    )
