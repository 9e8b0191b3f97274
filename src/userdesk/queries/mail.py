"""The outbox as admins see it: the built-in mail catcher and the delivery status of each email."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.errors import InvalidInput, NotFound
from userdesk.models import OutboxMessage
from userdesk.queries import cursors
from userdesk.security.permissions import Permission

MAX_LIMIT = 200
STATUSES = ("queued", "sent", "failed", "captured")


@dataclass(frozen=True)
class MailPage:
    items: list[OutboxMessage]
    next_cursor: str | None


async def list_mail(
    session: AsyncSession,
    *,
    viewer: Actor,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> MailPage:
    """Emails, newest first. Admins only (settings.manage): they hold links and passwords."""
    viewer.require(Permission.SETTINGS_MANAGE)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput.one("limit", "range", f"must be between 1 and {MAX_LIMIT}")
    if status is not None and status not in STATUSES:
        raise InvalidInput.one("status", "unknown_status", f"must be one of {', '.join(STATUSES)}")
    query = cursors.newest_first(
        select(OutboxMessage).where(OutboxMessage.kind.startswith("email.")),
        OutboxMessage.id,
        listing="mail",
        cursor=cursor,
        limit=limit,
    )
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    rows, next_cursor = cursors.cut(
        list(await session.scalars(query)), limit=limit, listing="mail", row_id=lambda r: r.id
    )
    return MailPage(items=rows, next_cursor=next_cursor)


async def get_mail(session: AsyncSession, *, viewer: Actor, email_id: int) -> OutboxMessage:
    """One email of the outbox. Admins only (settings.manage), as the listing."""
    viewer.require(Permission.SETTINGS_MANAGE)
    row = None
    if 0 < email_id <= cursors.MAX_ROW_ID:
        row = await session.get(OutboxMessage, email_id)
    if row is None or not row.kind.startswith("email."):
        raise NotFound(f"no email with id {email_id}")
    return row
