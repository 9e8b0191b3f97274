"""Personal access tokens: minted once, stored as digests, revocable."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.audit import AuditEvent, record_for_user
from userdesk.actions.context import Actor
from userdesk.actions.inputs import fold
from userdesk.errors import InvalidInput, NotFound, PermissionDenied
from userdesk.models import ApiToken, User, UserStatus
from userdesk.security.randomness import token_digest
from userdesk.services import services_of

TOKEN_NAME_MAX = 100
LAST_USED_RESOLUTION = timedelta(minutes=1)


def ensure_may_manage_tokens_of(actor: Actor, user: User) -> None:
    """A user manages their own tokens; the system actor (the operator's CLI) anyone's."""
    if not actor.is_system and actor.user_id != user.id:
        raise PermissionDenied("only the token's owner can manage it")


async def _user_by_username(session: AsyncSession, username: str) -> User:
    # Locked, so a deactivation in flight either sees this token and revokes it, or has
    # committed and we refuse below.
    user = await session.scalar(
        select(User).where(User.username_key == fold(username)).with_for_update()
    )
    if user is None:
        raise NotFound(f"no user named {username}")
    return user


async def create_token(
    session: AsyncSession,
    *,
    actor: Actor,
    username: str,
    name: str,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Returns the token row and its secret, which is shown once and never stored."""
    name = name.strip()
    if not 1 <= len(name) <= TOKEN_NAME_MAX:
        raise InvalidInput.one("name", "length", f"must be 1 to {TOKEN_NAME_MAX} characters long")
    user = await _user_by_username(session, username)
    ensure_may_manage_tokens_of(actor, user)
    if user.status is UserStatus.DEACTIVATED:
        raise InvalidInput.one("user", "deactivated", f"{user.username} is deactivated")
    services = services_of(session)
    now = services.clock.now()
    if expires_at is not None and expires_at <= now:
        raise InvalidInput.one("expires_at", "in_the_past", "must be in the future")
    secret = services.randomness.token()
    token = ApiToken(
        public_id=services.randomness.public_id(),
        user_id=user.id,
        name=name,
        digest=token_digest(secret),
        hint=secret[:8],
        created_at=now,
        expires_at=expires_at,
    )
    session.add(token)
    await session.flush()
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.TOKEN_CREATED,
        user=user,
        changes={"token": {"changed": True}, "token_name": {"before": None, "after": name}},
    )
    return token, secret


async def revoke_token(session: AsyncSession, *, actor: Actor, token_id: str) -> ApiToken:
    row = await session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.public_id == token_id)
        .with_for_update(of=ApiToken)
    )
    found = row.first()
    if found is None:
        raise NotFound(f"no token with id {token_id}")
    token, user = found
    ensure_may_manage_tokens_of(actor, user)
    if token.revoked_at is None:
        token.revoked_at = services_of(session).clock.now()
        await record_for_user(
            session,
            actor=actor,
            event=AuditEvent.TOKEN_REVOKED,
            user=user,
            changes={"token_name": {"before": token.name, "after": None}},
        )
    return token


async def note_token_use(session: AsyncSession, *, token_id: int, at: datetime) -> None:
    """Record last use, at most once a minute per token, so reads don't become writes."""
    token = await session.get(ApiToken, token_id)
    if token is not None and (
        token.last_used_at is None or at - token.last_used_at >= LAST_USED_RESOLUTION
    ):
        token.last_used_at = at
