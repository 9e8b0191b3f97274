"""Webhook events: which audited changes are sent to webhooks, and queueing them.

Every change is audited through `record()`, which hands each entry here: an audited action
with a webhook event queues one delivery (an outbox row and its log row) per active endpoint
subscribed to that event, in the change's own transaction. A change rolled back sends
nothing; a committed one is delivered by the worker, at least once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.models import OutboxMessage, WebhookDelivery, WebhookEndpoint
from userdesk.services import services_of

DELIVERY_KIND = "webhook.delivery"
PING = "ping"
SIGN_IN_FAILURES_EXCEEDED = "user.sign_in_failures_exceeded"

# The audited action -> the webhook event it sends.
EVENT_OF_ACTION: dict[str, str] = {
    "user.created": "user.created",
    # A person who joins through an invitation or invite link is a user created too.
    "user.joined": "user.created",
    "user.updated": "user.updated",
    "user.roles_changed": "user.roles_changed",
    "user.deactivated": "user.deactivated",
    "user.activated": "user.activated",
    "user.deleted": "user.deleted",
    "invitation.sent": "invitation.sent",
    "invitation.accepted": "invitation.accepted",
    # The account's failed sign-ins reached the workspace's lockout threshold, and it locked.
    "auth.account_locked": SIGN_IN_FAILURES_EXCEEDED,
}

EVENTS: tuple[str, ...] = tuple(dict.fromkeys(EVENT_OF_ACTION.values()))


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_body(
    *,
    event_id: str,
    event_type: str,
    occurred_at: datetime,
    actor: Actor,
    target: dict[str, Any],
    changes: dict[str, Any],
) -> str:
    """The JSON document a receiver gets, serialised once: retries send the same bytes."""
    document = {
        "id": event_id,
        "type": event_type,
        "occurred_at": iso_utc(occurred_at),
        "actor": {"id": actor.public_id, "name": actor.name},
        "target": target,
        "changes": changes,
    }
    return json.dumps(document, separators=(",", ":"), default=str)


def queue_delivery(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    *,
    event_id: str,
    event_type: str,
    body: str,
    now: datetime,
) -> WebhookDelivery:
    outbox = OutboxMessage(
        kind=DELIVERY_KIND,
        payload={"endpoint": endpoint.public_id, "event_id": event_id},
        status="queued",
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        outbox=outbox,
        event_id=event_id,
        event_type=event_type,
        body=body,
        created_at=now,
    )
    session.add_all([outbox, delivery])
    return delivery


async def queue_event(
    session: AsyncSession,
    *,
    action: str,
    actor: Actor,
    target: dict[str, Any],
    changes: dict[str, Any],
) -> None:
    """Queue the audited `action`'s webhook event, if it has one, for each active endpoint
    subscribed to it: one read of the active endpoints (by index), nothing when none is."""
    event_type = EVENT_OF_ACTION.get(action)
    if event_type is None:
        return
    # Share-locked (PostgreSQL; SQLite runs one writer at a time): an endpoint deleted
    # between this read and the insert of its deliveries made the change itself fail on the
    # foreign key. With the lock the delete waits for this change, and takes its deliveries.
    endpoints = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.active.is_(True))
        .with_for_update(read=True, key_share=True)
    )
    subscribed = [e for e in endpoints if event_type in e.events]
    if not subscribed:
        return
    services = services_of(session)
    now = services.clock.now()
    event_id = services.randomness.public_id()
    body = event_body(
        event_id=event_id,
        event_type=event_type,
        occurred_at=now,
        actor=actor,
        target=target,
        changes=changes,
    )
    for endpoint in subscribed:
        queue_delivery(
            session, endpoint, event_id=event_id, event_type=event_type, body=body, now=now
        )
