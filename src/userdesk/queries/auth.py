"""Who is calling: a bearer token resolved to an Actor."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from userdesk.actions.context import Actor
from userdesk.actions.rules import permissions_of
from userdesk.models import ApiToken, User, UserStatus
from userdesk.security.randomness import token_digest
from userdesk.services import services_of


async def actor_for_token(
    session: AsyncSession, token: str, *, ip: str | None, user_agent: str | None
) -> tuple[Actor, ApiToken] | None:
    """The actor behind a live token of a user who is not deactivated, else None."""
    row = (
        await session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.digest == token_digest(token), ApiToken.revoked_at.is_(None))
            .options(selectinload(User.roles))
        )
    ).first()
    if row is None:
        return None
    api_token, user = row
    now = services_of(session).clock.now()
    if api_token.expires_at is not None and api_token.expires_at <= now:
        return None
    if user.status is UserStatus.DEACTIVATED:
        return None
    actor = Actor(
        user_id=user.id,
        public_id=user.public_id,
        name=user.username,
        permissions=permissions_of(user.roles),
        ip=ip,
        user_agent=user_agent,
    )
    return actor, api_token
