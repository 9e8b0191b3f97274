"""Workspace settings and seat usage."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.actions.seats import seats_used
from userdesk.models import WORKSPACE_ID, User, Workspace
from userdesk.security.permissions import Permission

# Seats are "nearly full" from this share of the limit on.
NEARLY_FULL = 0.9


@dataclass(frozen=True)
class Seats:
    used: int
    limit: int | None

    @property
    def available(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    @property
    def state(self) -> str:
        """ "full", "nearly-full" (from 90% of the limit) or "" (room, or no limit)."""
        if self.limit is None:
            return ""
        if self.used >= self.limit:
            return "full"
        return "nearly-full" if self.used >= self.limit * NEARLY_FULL else ""


async def get_workspace(session: AsyncSession) -> Workspace:
    # By primary key: a transaction that has read (or locked) the row already gets it from
    # the session without asking the database again.
    workspace = await session.get(Workspace, WORKSPACE_ID)
    assert workspace is not None, "the initial migration creates the workspace row"
    return workspace


async def get_settings(session: AsyncSession, *, viewer: Actor) -> Workspace:
    viewer.require(Permission.SETTINGS_MANAGE)
    return await get_workspace(session)


async def get_seats(session: AsyncSession, *, viewer: Actor) -> Seats:
    viewer.require(Permission.SEATS_READ)
    workspace = await get_workspace(session)
    return Seats(used=await seats_used(session), limit=workspace.seat_limit)


async def own_email(session: AsyncSession, *, viewer: Actor) -> str | None:
    """The viewer's own address (None for the operator)."""
    if viewer.user_id is None:
        return None
    return await session.scalar(select(User.email).where(User.id == viewer.user_id))
