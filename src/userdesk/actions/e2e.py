"""End-to-end encryption keys: stored for the client as opaque blobs; reset by an admin."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.audit import AuditEvent, record_for_user
from userdesk.actions.context import Actor
from userdesk.actions.inputs import E2EKeysInput
from userdesk.actions.outbox import notify_user
from userdesk.actions.passwords import end_access
from userdesk.actions.rules import ensure_can_act_on, lock_user
from userdesk.errors import Conflict, PermissionDenied
from userdesk.models import E2EKeys, User
from userdesk.security.permissions import Permission
from userdesk.services import services_of


async def set_own_keys(session: AsyncSession, *, actor: Actor, data: E2EKeysInput) -> User:
    """Store (or replace) the signed-in user's public key and encrypted private key, as an
    end-to-end encrypting client does after generating them."""
    if actor.public_id is None:
        raise PermissionDenied("only a signed-in user has keys of their own")
    actor.ensure_may_act()
    user = await lock_user(session, actor.public_id)
    now = services_of(session).clock.now()
    keys = await session.get(E2EKeys, user.id)
    replaced = keys is not None
    if keys is None:
        keys = E2EKeys(user_id=user.id)
        session.add(keys)
    keys.public_key = data.public_key
    keys.private_key = data.private_key
    keys.updated_at = now
    user.e2e_keys_at = now
    await session.flush()
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.E2E_KEYS_SET,
        user=user,
        changes={"e2e_keys": {"before": "set" if replaced else None, "after": "set"}},
    )
    return user


async def reset_keys(session: AsyncSession, *, actor: Actor, user_id: str) -> User:
    """The Users page's "Reset E2EE key": delete the user's keys and sign them out everywhere
    (sessions and tokens), as Rocket.Chat does; their client makes new keys at next sign-in.
    Only for users who have keys."""
    actor.require(Permission.USERS_RESET_CREDENTIALS)
    user = await lock_user(session, user_id)
    ensure_can_act_on(actor, user, doing="resetting the E2EE keys of")
    keys = await session.get(E2EKeys, user.id)
    if keys is None:
        raise Conflict(f"{user.username} has no end-to-end encryption keys to reset")
    now = services_of(session).clock.now()
    await session.delete(keys)
    user.e2e_keys_at = None
    user.updated_at = now
    ended = await end_access(session, user, now=now)
    await notify_user(session, user, "e2e_keys_reset")
    await session.flush()
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.E2E_KEYS_RESET,
        user=user,
        changes={
            "e2e_keys": {"before": "set", "after": None},
            "sessions": {"before": ended, "after": 0},
        },
    )
    return user
