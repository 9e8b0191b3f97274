"""The audit log, newest first, filtered and paged by id."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.errors import InvalidInput
from userdesk.models import AuditEntry
from userdesk.security.permissions import Permission

MAX_LIMIT = 500


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditEntry]
    next_cursor: str | None


def _decode(cursor: str) -> int:
    try:
        value = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput.one(
            "cursor", "invalid_cursor", "is not a cursor from this listing"
        ) from None
    return value


def _encode(entry_id: int) -> str:
    return base64.urlsafe_b64encode(str(entry_id).encode()).decode().rstrip("=")


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
        if value is not None and value.tzinfo is None:
            raise InvalidInput.one(field, "timezone_required", "must include a UTC offset or Z")
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
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
    if cursor:
        query = query.where(AuditEntry.id < _decode(cursor))
    entries = list(await session.scalars(query))
    next_cursor = None
    if len(entries) > limit:
        entries = entries[:limit]
        next_cursor = _encode(entries[-1].id)
    return AuditPage(items=entries, next_cursor=next_cursor)
