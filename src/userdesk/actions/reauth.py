"""Confirming a sensitive change with the current password, under the sign-in throttle.

A stolen session or token must not become a way to guess the password: each check here is
refused while the account is locked, and each wrong password counts as a failed sign-in.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import throttle
from userdesk.actions.audit import AuditEvent, record_for_user
from userdesk.actions.context import Actor
from userdesk.actions.inputs import fold
from userdesk.actions.rules import lock_user
from userdesk.errors import TooManyAttempts, WrongPassword
from userdesk.models import User
from userdesk.queries.workspace import get_workspace
from userdesk.services import services_of


async def check_current_password(
    session: AsyncSession, *, actor: Actor, user: User, password: str, field: str = "password"
) -> None:
    """Pass, or raise WrongPassword (counted by the adapter) or TooManyAttempts."""
    refused = await throttle.refusal(
        session,
        login=throttle.login_key(fold(user.username)),
        account=throttle.account_key(user),
        ip=actor.ip,
        workspace=await get_workspace(session),
    )
    if isinstance(refused, throttle.AccountLocked):
        raise TooManyAttempts(
            "too many wrong passwords: your account is locked for now",
            retry_after=throttle.seconds_until(refused.until, services_of(session).clock.now()),
        )
    if refused is not None:
        raise refused
    if not await services_of(session).passwords.verify(user.password_hash, password):
        raise WrongPassword(field, user_id=user.public_id)


async def note_wrong_password(
    session: AsyncSession, *, user_id: str, ip: str | None, user_agent: str | None
) -> None:
    """Count a wrong current password as a failed sign-in of the user, in its own transaction."""
    user = await lock_user(session, user_id)
    actor = Actor(
        user_id=user.id,
        public_id=user.public_id,
        name=user.username,
        permissions=frozenset(),
        ip=ip,
        user_agent=user_agent,
    )
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.SIGN_IN_FAILED,
        user=user,
        changes={"reason": {"before": None, "after": "wrong current password"}},
    )
    await throttle.note_failure(
        session,
        login=throttle.login_key(fold(user.username)),
        account=throttle.account_key(user),
        ip=ip,
        workspace=await get_workspace(session),
        user=user,
        actor=actor,
    )
