"""Seats and the per-status counters: the workspace row is the lock that makes them atomic."""

from __future__ import annotations

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.errors import SeatLimitReached
from userdesk.models import (
    WORKSPACE_ID,
    Invitation,
    User,
    UserCount,
    UserStatus,
    UserType,
    Workspace,
)
from userdesk.queries.invitations import invitation_open
from userdesk.services import services_of

SEAT_STATUSES = (UserStatus.PENDING, UserStatus.ACTIVE)


def takes_seat(status: UserStatus, user_type: UserType) -> bool:
    """Pending and active humans take a seat; bots and deactivated users take none."""
    return user_type is UserType.HUMAN and status in SEAT_STATUSES


async def lock_workspace(session: AsyncSession) -> Workspace:
    """Lock the workspace row. Every change of a user's status takes this lock first, so seat
    checks and counter updates are serialised across processes (SQLite serialises writers
    anyway through BEGIN IMMEDIATE)."""
    workspace = await session.scalar(
        select(Workspace)
        .where(Workspace.id == WORKSPACE_ID)
        .with_for_update()
        # What the lock protects is read fresh, even if this transaction read the row before.
        .execution_options(populate_existing=True)
    )
    assert workspace is not None, "the initial migration creates the workspace row"
    return workspace


async def seats_used(session: AsyncSession) -> int:
    """Pending and active humans, and open invitations: each holds a seat for its address.
    Joining closes the invitation in the transaction that creates its user; an invited
    address that became a user some other way is counted once, as the user."""
    rows = await session.scalars(
        select(UserCount.count).where(
            UserCount.type == UserType.HUMAN, UserCount.status.in_(SEAT_STATUSES)
        )
    )
    invited = await session.scalar(
        select(func.count())
        .select_from(Invitation)
        .where(
            invitation_open(services_of(session).clock.now()),
            ~exists().where(User.email_key == Invitation.email_key),
        )
    )
    return sum(rows) + (invited or 0)


async def ensure_free_seat(session: AsyncSession, workspace: Workspace, needed: int = 1) -> None:
    """Raise SeatLimitReached unless `needed` more seats fit. Call with the workspace locked."""
    if workspace.seat_limit is None:
        return
    used = await seats_used(session)
    if used + needed > workspace.seat_limit:
        taken = (
            f"all {workspace.seat_limit} seats are taken ({used} used)"
            if needed == 1
            else f"{needed} more seats do not fit: {used} of {workspace.seat_limit} seats are used"
        )
        raise SeatLimitReached(
            f"{taken}; raise the seat limit, revoke invitations or deactivate someone first"
        )


async def move(
    session: AsyncSession,
    user_type: UserType,
    old: UserStatus | None,
    new: UserStatus | None,
) -> None:
    """Move one user between counters (None: not counted before, or not any more)."""
    if old == new:
        return
    for status, delta in ((old, -1), (new, 1)):
        if status is not None:
            await session.execute(
                update(UserCount)
                .where(UserCount.status == status, UserCount.type == user_type)
                .values(count=UserCount.count + delta)
            )
