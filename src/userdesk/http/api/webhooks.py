"""/api/v1/webhooks: outgoing webhook endpoints and their delivery log (webhooks.manage)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from userdesk.actions import webhooks as webhook_actions
from userdesk.actions.context import Actor
from userdesk.actions.inputs import WebhookCreate, WebhookUpdate
from userdesk.actions.webhook_events import EVENTS
from userdesk.db import Database
from userdesk.http.deps import ActorDep, DatabaseDep
from userdesk.http.problems import problem_responses
from userdesk.queries import webhooks as webhook_queries
from userdesk.views import (
    DeliveryListView,
    DeliveryView,
    RegisteredWebhookView,
    WebhookEventsView,
    WebhookListView,
    WebhookView,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], responses=problem_responses())


@router.get("/events", response_model=WebhookEventsView)
async def webhook_events(actor: ActorDep) -> WebhookEventsView:
    """The event types an endpoint may subscribe to."""
    del actor  # signed in, as every API route
    return WebhookEventsView(events=list(EVENTS))


@router.get("", response_model=WebhookListView)
async def list_webhooks(actor: ActorDep, database: DatabaseDep) -> WebhookListView:
    async with database.reader() as session:
        rows = await webhook_queries.list_webhooks(session, viewer=actor)
        return WebhookListView(items=[WebhookView.of(e) for e in rows])


@router.post("", status_code=201, response_model=RegisteredWebhookView)
async def create_webhook(
    body: WebhookCreate, actor: ActorDep, database: DatabaseDep, response: Response
) -> RegisteredWebhookView:
    """Register an endpoint. Without `secret`, the server makes one: it is in this answer
    only. `allow_private_network` lets deliveries reach loopback and private addresses."""
    async with database.transaction() as session:
        made = await webhook_actions.create_webhook(session, actor=actor, data=body)
        view = RegisteredWebhookView(webhook=WebhookView.of(made.endpoint), secret=made.secret)
    response.headers["Location"] = f"/api/v1/webhooks/{view.webhook.id}"
    return view


@router.get("/{webhook_id}", response_model=WebhookView)
async def get_webhook(webhook_id: str, actor: ActorDep, database: DatabaseDep) -> WebhookView:
    async with database.reader() as session:
        endpoint = await webhook_queries.get_webhook(session, viewer=actor, webhook_id=webhook_id)
        return WebhookView.of(endpoint)


@router.patch("/{webhook_id}", response_model=RegisteredWebhookView)
async def update_webhook(
    webhook_id: str, body: WebhookUpdate, actor: ActorDep, database: DatabaseDep
) -> RegisteredWebhookView:
    """Change what is given. `rotate_secret: true` makes a new secret, in this answer only."""
    async with database.transaction() as session:
        made = await webhook_actions.update_webhook(
            session, actor=actor, webhook_id=webhook_id, data=body
        )
        return RegisteredWebhookView(webhook=WebhookView.of(made.endpoint), secret=made.secret)


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: str, actor: ActorDep, database: DatabaseDep) -> Response:
    async with database.transaction() as session:
        await webhook_actions.delete_webhook(session, actor=actor, webhook_id=webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryListView)
async def list_deliveries(
    webhook_id: str,
    actor: ActorDep,
    database: DatabaseDep,
    limit: Annotated[int, Query()] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> DeliveryListView:
    """The endpoint's deliveries, newest first; `next_cursor` fetches the next page."""
    async with database.reader() as session:
        page = await webhook_queries.list_deliveries(
            session, viewer=actor, webhook_id=webhook_id, limit=limit, cursor=cursor
        )
        return DeliveryListView(
            items=[DeliveryView.of(d, row) for d, row in page.items],
            next_cursor=page.next_cursor,
        )


@router.get("/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryView)
async def get_delivery(
    webhook_id: str, delivery_id: int, actor: ActorDep, database: DatabaseDep
) -> DeliveryView:
    """One delivery: its status, the receiver's last answer, and the body sent."""
    return await _view(database, actor, webhook_id, delivery_id)


async def _view(
    database: Database, actor: Actor, webhook_id: str, delivery_id: int
) -> DeliveryView:
    async with database.reader() as session:
        delivery, row = await webhook_queries.get_delivery(
            session, viewer=actor, webhook_id=webhook_id, delivery_id=delivery_id
        )
        return DeliveryView.of(delivery, row)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryView,
)
async def redeliver(
    webhook_id: str, delivery_id: int, actor: ActorDep, database: DatabaseDep
) -> DeliveryView:
    """Queue a delivery again: the same event id and body, a fresh count of attempts."""
    async with database.transaction() as session:
        await webhook_actions.redeliver(
            session, actor=actor, webhook_id=webhook_id, delivery_id=delivery_id
        )
    return await _view(database, actor, webhook_id, delivery_id)


@router.post("/{webhook_id}/ping", status_code=202, response_model=DeliveryView)
async def ping(webhook_id: str, actor: ActorDep, database: DatabaseDep) -> DeliveryView:
    """Queue a "ping" event to the endpoint, whatever events it subscribes to."""
    async with database.transaction() as session:
        delivery = await webhook_actions.ping(session, actor=actor, webhook_id=webhook_id)
        delivery_id = delivery.id
    return await _view(database, actor, webhook_id, delivery_id)
