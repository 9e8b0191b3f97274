"""The audit log, newest first, filtered and paged by id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.actions.inputs import fold
from userdesk.errors import InvalidInput
from userdesk.models import AuditEntry, Role, User
from userdesk.queries import cursors
from userdesk.security.permissions import Permission

MAX_LIMIT = 500


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditEntry]
    next_cursor: str | None


async def list_audit(
    session: AsyncSession,
    *,
    viewer: Actor,
    actor: str | None = None,
    target: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AuditPage:
    """`actor` and `target` are public ids (a role's target id is its name)."""
    viewer.require(Permission.AUDIT_READ)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput.one("limit", "range", f"must be between 1 and {MAX_LIMIT}")
    for field, value in (("since", since), ("until", until)):
        if value is None:
            continue
        if value.tzinfo is None:
            raise InvalidInput.one(field, "timezone_required", "must include a UTC offset or Z")
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise InvalidInput.one(field, "range", "is outside the years 1 to 9999") from None
    query = cursors.newest_first(
        select(AuditEntry), AuditEntry.id, listing="audit", cursor=cursor, limit=limit
    )
    if actor:
        query = query.where(AuditEntry.actor_id == actor)
    if target:
        query = query.where(AuditEntry.target_id == target)
    if action:
        query = query.where(AuditEntry.action == action)
    if since:
        query = query.where(AuditEntry.at >= since)
    if until:
        query = query.where(AuditEntry.at < until)
    entries, next_cursor = cursors.cut(
        list(await session.scalars(query)), limit=limit, listing="audit", row_id=lambda e: e.id
    )
    return AuditPage(items=entries, next_cursor=next_cursor)


async def entry_subject(session: AsyncSession, typed: str, *, roles: bool) -> str:
    """What the log knows a person or role by, from what an admin typed in a filter: a
    role's name is its own id (when `roles`), a current user's username becomes their id,
    and anything else is taken as an id (a deleted user's, say)."""
    if roles and await session.scalar(select(Role.name).where(Role.name == typed)):
        return typed
    found = await session.scalar(select(User.public_id).where(User.username_key == fold(typed)))
    return found or typed
