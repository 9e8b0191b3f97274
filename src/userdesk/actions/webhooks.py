"""Registering webhook endpoints, and queueing deliveries again (redelivery, ping).

Only holders of webhooks.manage act here: an endpoint receives users' names and changes.
The signing secret is sealed with the server's key (the worker must read it back to sign)
and is answered once, when made.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.audit import AuditEvent, record
from userdesk.actions.context import Actor
from userdesk.actions.inputs import WebhookCreate, WebhookUpdate
from userdesk.actions.webhook_events import EVENTS, PING, event_body, queue_delivery
from userdesk.errors import Conflict, InvalidInput, NotFound
from userdesk.models import OutboxMessage, WebhookDelivery, WebhookEndpoint
from userdesk.queries.cursors import MAX_ROW_ID
from userdesk.security.addresses import literal_address, numeric_ipv4, refusal
from userdesk.security.permissions import Permission
from userdesk.services import services_of

SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class Registered:
    endpoint: WebhookEndpoint
    # The signing secret in clear: set when this action made or replaced it, else None.
    secret: str | None


def _check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise InvalidInput.one(
            "events", "unknown_event", f"no event {unknown[0]}; known: {', '.join(EVENTS)}"
        )
    return list(dict.fromkeys(events))


def _check_reachable(url: str, *, allow_private_network: bool) -> None:
    """A URL naming a refused address outright, in any form the resolver reads as one, is
    refused now (a host name is checked at each delivery, since what it resolves to may
    change)."""
    host = urlsplit(url).hostname or ""
    address = literal_address(host) or numeric_ipv4(host)
    if address is None:
        return
    reason = refusal(address, allow_private_network=allow_private_network)
    if reason is not None:
        raise InvalidInput.one("url", "address_refused", f"is refused: {address} is {reason}")


async def lock_endpoint(session: AsyncSession, webhook_id: str) -> WebhookEndpoint:
    endpoint = await session.scalar(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.public_id == webhook_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if endpoint is None:
        raise NotFound(f"no webhook with id {webhook_id}")
    return endpoint


def _state(endpoint: WebhookEndpoint) -> dict[str, object]:
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "events": list(endpoint.events),
        "active": endpoint.active,
        "allow_private_network": endpoint.allow_private_network,
    }


async def create_webhook(session: AsyncSession, *, actor: Actor, data: WebhookCreate) -> Registered:
    actor.require(Permission.WEBHOOKS_MANAGE)
    events = _check_events(data.events)
    _check_reachable(data.url, allow_private_network=data.allow_private_network)
    services = services_of(session)
    now = services.clock.now()
    secret = data.secret or SECRET_PREFIX + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(
        public_id=services.randomness.public_id(),
        url=data.url,
        description=data.description,
        secret=services.sealer.seal(secret),
        events=events,
        active=data.active,
        allow_private_network=data.allow_private_network,
        created_at=now,
        updated_at=now,
        created_by=actor.name,
    )
    session.add(endpoint)
    await session.flush()
    await record(
        session,
        actor=actor,
        event=AuditEvent.WEBHOOK_CREATED,
        target_type="webhook",
        target_id=endpoint.public_id,
        target_name=endpoint.url,
        changes={
            **{k: {"before": None, "after": v} for k, v in _state(endpoint).items()},
            "secret": {"changed": True},
        },
    )
    return Registered(endpoint, None if data.secret else secret)


async def update_webhook(
    session: AsyncSession, *, actor: Actor, webhook_id: str, data: WebhookUpdate
) -> Registered:
    actor.require(Permission.WEBHOOKS_MANAGE)
    if data.rotate_secret and data.secret is not None:
        raise InvalidInput.one(
            "rotate_secret", "conflicting", "give either a secret or rotate_secret, not both"
        )
    endpoint = await lock_endpoint(session, webhook_id)
    before = _state(endpoint)
    if data.url is not None:
        endpoint.url = data.url
    if data.events is not None:
        endpoint.events = _check_events(data.events)
    if data.description is not None:
        endpoint.description = data.description
    if data.active is not None:
        endpoint.active = data.active
    if data.allow_private_network is not None:
        endpoint.allow_private_network = data.allow_private_network
    _check_reachable(endpoint.url, allow_private_network=endpoint.allow_private_network)
    services = services_of(session)
    new_secret = data.secret
    made = None
    if data.rotate_secret:
        new_secret = made = SECRET_PREFIX + secrets.token_urlsafe(32)
    changes = {
        k: {"before": before[k], "after": v} for k, v in _state(endpoint).items() if before[k] != v
    }
    if new_secret is not None:
        endpoint.secret = services.sealer.seal(new_secret)
        changes["secret"] = {"changed": True}
    if changes:
        endpoint.updated_at = services.clock.now()
        await record(
            session,
            actor=actor,
            event=AuditEvent.WEBHOOK_UPDATED,
            target_type="webhook",
            target_id=endpoint.public_id,
            target_name=endpoint.url,
            changes=changes,
        )
    return Registered(endpoint, made)


async def delete_webhook(session: AsyncSession, *, actor: Actor, webhook_id: str) -> None:
    """Delete an endpoint with its delivery log; what was still queued for it is dropped."""
    actor.require(Permission.WEBHOOKS_MANAGE)
    endpoint = await lock_endpoint(session, webhook_id)
    await session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.id.in_(
                select(WebhookDelivery.outbox_id).where(WebhookDelivery.endpoint_id == endpoint.id)
            )
        )
    )
    await session.delete(endpoint)
    await record(
        session,
        actor=actor,
        event=AuditEvent.WEBHOOK_DELETED,
        target_type="webhook",
        target_id=endpoint.public_id,
        target_name=endpoint.url,
        changes={k: {"before": v, "after": None} for k, v in _state(endpoint).items()},
    )


async def redeliver(
    session: AsyncSession, *, actor: Actor, webhook_id: str, delivery_id: int
) -> WebhookDelivery:
    """Queue a delivery again, now, with a fresh count of attempts: the same event, id and
    body (a receiver that saw it before recognises it by its id)."""
    actor.require(Permission.WEBHOOKS_MANAGE)
    endpoint = await lock_endpoint(session, webhook_id)
    found = None
    if 0 < delivery_id <= MAX_ROW_ID:  # any other id is nobody's, and the database's to refuse
        found = (
            await session.execute(
                select(WebhookDelivery, OutboxMessage)
                .join(OutboxMessage, OutboxMessage.id == WebhookDelivery.outbox_id)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.endpoint_id == endpoint.id,
                )
                .with_for_update(of=OutboxMessage)
            )
        ).first()
    if found is None:
        raise NotFound(f"no delivery with id {delivery_id} for webhook {webhook_id}")
    delivery, row = found
    if row.status == "queued":
        raise Conflict(f"delivery {delivery_id} is queued already", field="status")
    if not endpoint.active:
        raise Conflict("the webhook is inactive: activate it first", field="active")
    before = row.status
    row.status = "queued"
    row.attempts = 0
    row.next_attempt_at = services_of(session).clock.now()
    row.claimed_until = None
    # What the log shows of the earlier attempts would read as this delivery's.
    row.sent_at = None
    row.last_error = None
    await record(
        session,
        actor=actor,
        event=AuditEvent.WEBHOOK_REDELIVERED,
        target_type="webhook",
        target_id=endpoint.public_id,
        target_name=endpoint.url,
        changes={
            "delivery": {"before": None, "after": delivery.id},
            "event_id": {"before": None, "after": delivery.event_id},
            "status": {"before": before, "after": "queued"},
        },
    )
    return delivery


async def ping(session: AsyncSession, *, actor: Actor, webhook_id: str) -> WebhookDelivery:
    """Queue a "ping" event for the endpoint, whatever it subscribes to, to test it."""
    actor.require(Permission.WEBHOOKS_MANAGE)
    endpoint = await lock_endpoint(session, webhook_id)
    services = services_of(session)
    now = services.clock.now()
    event_id = services.randomness.public_id()
    target = {"type": "webhook", "id": endpoint.public_id, "name": endpoint.url}
    body = event_body(
        event_id=event_id,
        event_type=PING,
        occurred_at=now,
        actor=actor,
        target=target,
        changes={},
    )
    delivery = queue_delivery(
        session, endpoint, event_id=event_id, event_type=PING, body=body, now=now
    )
    await session.flush()
    await record(
        session,
        actor=actor,
        event=AuditEvent.WEBHOOK_PINGED,
        target_type="webhook",
        target_id=endpoint.public_id,
        target_name=endpoint.url,
        changes={"event_id": {"before": None, "after": event_id}},
    )
    return delivery
