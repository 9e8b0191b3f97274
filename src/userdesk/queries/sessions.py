"""A user's open sign-in sessions."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.actions.rules import ensure_can_act_on
from userdesk.models import LoginSession
from userdesk.queries.users import get_user
from userdesk.security.permissions import Permission
from userdesk.services import services_of


async def list_sessions(
    session: AsyncSession, *, viewer: Actor, user_id: str
) -> list[LoginSession]:
    """Oneself's, or those of anyone the viewer may reset and does not outrank; newest first."""
    if viewer.public_id != user_id:
        viewer.require(Permission.USERS_RESET_CREDENTIALS)
    user = await get_user(session, viewer=viewer, user_id=user_id)
    ensure_can_act_on(viewer, user, doing="seeing the sessions of")
    now = services_of(session).clock.now()
    rows = await session.scalars(
        select(LoginSession)
        .where(
            LoginSession.user_id == user.id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
        )
        .order_by(LoginSession.id.desc())
    )
    return list(rows)
