"""Webhook endpoints and their delivery log, as admins (webhooks.manage) read them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.errors import InvalidInput, NotFound
from userdesk.models import OutboxMessage, WebhookDelivery, WebhookEndpoint
from userdesk.queries import cursors
from userdesk.security.permissions import Permission

MAX_LIMIT = 100


@dataclass(frozen=True)
class DeliveryPage:
    items: list[tuple[WebhookDelivery, OutboxMessage]]
    next_cursor: str | None


async def list_webhooks(session: AsyncSession, *, viewer: Actor) -> list[WebhookEndpoint]:
    viewer.require(Permission.WEBHOOKS_MANAGE)
    return list(await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


async def get_webhook(session: AsyncSession, *, viewer: Actor, webhook_id: str) -> WebhookEndpoint:
    viewer.require(Permission.WEBHOOKS_MANAGE)
    endpoint = await session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.public_id == webhook_id)
    )
    if endpoint is None:
        raise NotFound(f"no webhook with id {webhook_id}")
    return endpoint


async def list_deliveries(
    session: AsyncSession,
    *,
    viewer: Actor,
    webhook_id: str,
    limit: int = 50,
    cursor: str | None = None,
) -> DeliveryPage:
    """An endpoint's deliveries, newest first, with their outbox rows (status, attempts)."""
    endpoint = await get_webhook(session, viewer=viewer, webhook_id=webhook_id)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput.one("limit", "range", f"must be between 1 and {MAX_LIMIT}")
    query = cursors.newest_first(
        select(WebhookDelivery, OutboxMessage)
        .join(OutboxMessage, OutboxMessage.id == WebhookDelivery.outbox_id)
        .where(WebhookDelivery.endpoint_id == endpoint.id),
        WebhookDelivery.id,
        listing="deliveries",
        cursor=cursor,
        limit=limit,
    )
    rows = [(d, o) for d, o in await session.execute(query)]
    page, next_cursor = cursors.cut(
        rows, limit=limit, listing="deliveries", row_id=lambda r: r[0].id
    )
    return DeliveryPage(items=page, next_cursor=next_cursor)


async def get_delivery(
    session: AsyncSession, *, viewer: Actor, webhook_id: str, delivery_id: int
) -> tuple[WebhookDelivery, OutboxMessage]:
    endpoint = await get_webhook(session, viewer=viewer, webhook_id=webhook_id)
    found = None
    if 0 < delivery_id <= cursors.MAX_ROW_ID:
        found = (
            await session.execute(
                select(WebhookDelivery, OutboxMessage)
                .join(OutboxMessage, OutboxMessage.id == WebhookDelivery.outbox_id)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.endpoint_id == endpoint.id,
                )
            )
        ).first()
    if found is None:
        raise NotFound(f"no delivery with id {delivery_id} for webhook {webhook_id}")
    return found[0], found[1]
