"""A user's personal access tokens (never their secrets)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.actions.tokens import ensure_may_manage_tokens_of
from userdesk.models import ApiToken, User


async def list_tokens(session: AsyncSession, *, viewer: Actor, user: User) -> list[ApiToken]:
    ensure_may_manage_tokens_of(viewer, user)
    rows = await session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    )
    return list(rows)
