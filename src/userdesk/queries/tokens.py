"""A user's personal access tokens (never their secrets)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from userdesk.actions.context import Actor
from userdesk.actions.tokens import ensure_may_manage_tokens_of
from userdesk.errors import NotFound
from userdesk.models import ApiToken, User


async def list_tokens(session: AsyncSession, *, viewer: Actor, user: User) -> list[ApiToken]:
    ensure_may_manage_tokens_of(viewer, user, revoking=True)
    rows = await session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    )
    return list(rows)


async def token_owner(session: AsyncSession, *, viewer: Actor, user_id: str) -> User:
    """The user whose tokens are asked for, with roles, if the viewer may manage them."""
    user = await session.scalar(
        select(User).where(User.public_id == user_id).options(selectinload(User.roles))
    )
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    ensure_may_manage_tokens_of(viewer, user, revoking=True)
    return user
