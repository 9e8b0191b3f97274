"""The one place a password is judged against the policy and stored; the admin's reset.

Every path that sets a password (create, edit, own change, reset by an admin, reset by an
emailed link, joining) goes through `check_password` and `store_password`, so the policy
and the side effects (reset links die, hash parameters current) hold everywhere.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.audit import AuditEvent, record_for_user
from userdesk.actions.context import Actor
from userdesk.actions.inputs import AdminPasswordReset
from userdesk.actions.outbox import enqueue_email, notify_user
from userdesk.actions.rules import ensure_can_act_on, lock_user
from userdesk.errors import FieldError, InvalidInput
from userdesk.models import ApiToken, LoginSession, OneTimeLink, User, Workspace
from userdesk.queries.workspace import get_workspace
from userdesk.security.password_policy import PasswordPolicy
from userdesk.security.permissions import Permission
from userdesk.services import services_of

RANDOM_PASSWORD_TRIES = 20


async def policy_of(session: AsyncSession, workspace: Workspace | None = None) -> PasswordPolicy:
    return PasswordPolicy.of(workspace or await get_workspace(session))


async def check_password(
    session: AsyncSession,
    password: str,
    *,
    username: str | None,
    email: str | None,
    field: str = "password",
) -> None:
    """Refuse a password that breaks any rule of the workspace's policy, naming every rule."""
    policy = await policy_of(session)
    failures = policy.failures(password, username=username, email=email)
    if failures:
        raise InvalidInput(
            [
                FieldError(field, f"password_{rule.rule}", f"must meet the policy: {rule.message}")
                for rule in failures
            ]
        )


async def store_password(session: AsyncSession, user: User, password: str) -> None:
    """Hash and set an already checked password. Reset links issued before now die."""
    services = services_of(session)
    now = services.clock.now()
    user.password_hash = await services.passwords.hash(password)
    user.password_changed_at = now
    user.updated_at = now


async def end_access(
    session: AsyncSession, user: User, *, now: datetime, keep_session_digest: str | None = None
) -> int:
    """Revoke every open session and token of the user (but the one session kept, if any),
    and close their open one-time links (reset, verification, email change). Each request
    checks these in the database, so every server process refuses them at once."""
    await session.execute(
        update(OneTimeLink)
        .where(OneTimeLink.user_id == user.id, OneTimeLink.used_at.is_(None))
        .values(used_at=now)
    )
    await session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    conditions = [LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None)]
    if keep_session_digest is not None:
        conditions.append(LoginSession.digest != keep_session_digest)
    ended = await session.execute(update(LoginSession).where(*conditions).values(revoked_at=now))
    return int(getattr(ended, "rowcount", 0) or 0)


async def random_password(session: AsyncSession, user: User) -> str:
    """A strong random password that also meets the workspace's policy."""
    services = services_of(session)
    policy = await policy_of(session)
    for _ in range(RANDOM_PASSWORD_TRIES):
        candidate = services.randomness.password()
        if not policy.failures(candidate, username=user.username, email=user.email):
            return candidate
    raise InvalidInput.one(
        "mode",
        "policy_unsatisfiable",
        "no random password meets the workspace's password policy; set one manually",
    )


async def reset_password(
    session: AsyncSession, *, actor: Actor, user_id: str, data: AdminPasswordReset
) -> User:
    """The Users page's "Reset password": a random password emailed to the user, who must
    change it at the next sign-in, or one set by hand (policy-checked) with an optional
    "require password change". Either way every session and token of the user ends."""
    actor.require(Permission.USERS_RESET_CREDENTIALS)
    if data.mode == "manual" and data.password is None:
        raise InvalidInput.one("password", "required", "is required when mode is manual")
    if data.mode == "random" and data.password is not None:
        raise InvalidInput.one(
            "password", "not_allowed", "is chosen by the server when mode is random"
        )
    user = await lock_user(session, user_id)
    ensure_can_act_on(actor, user, doing="resetting the password of")
    services = services_of(session)
    now = services.clock.now()
    if data.mode == "random":
        password = await random_password(session, user)
        require_change = True
    else:
        assert data.password is not None
        await check_password(session, data.password, username=user.username, email=user.email)
        password = data.password
        require_change = data.require_password_change
    await store_password(session, user, password)
    user.require_password_change = require_change
    ended = await end_access(session, user, now=now)
    changes: dict[str, object] = {
        "password": {"changed": True},
        "mode": {"before": None, "after": data.mode},
        "require_password_change": {"before": None, "after": require_change},
        "sessions": {"before": ended, "after": 0},
    }
    if data.mode == "random":
        await enqueue_email(
            session,
            template="random_password",
            to=user.email,
            context={"user_id": user.public_id, "name": user.name, "username": user.username},
            secrets={"password": password},
        )
        changes["email"] = {"before": None, "after": "queued"}
    else:
        await notify_user(session, user, "password_changed", by="an administrator")
    await session.flush()
    await record_for_user(
        session, actor=actor, event=AuditEvent.PASSWORD_RESET, user=user, changes=changes
    )
    return user
