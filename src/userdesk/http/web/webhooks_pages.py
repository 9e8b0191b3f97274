"""The Webhooks page: register endpoints, read each one's delivery log, ping, redeliver,
pause and delete. Plain forms (each change posts and comes back to the page), through the
same actions as /api/v1/webhooks; for those who hold webhooks.manage.

A secret the server makes is shown once, on the answer to the form that made it (never
behind a redirect, where a reload would have to show it again).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from userdesk.actions import webhooks as webhook_actions
from userdesk.actions.inputs import WebhookCreate, WebhookUpdate
from userdesk.actions.webhook_events import EVENTS
from userdesk.db import Database
from userdesk.errors import InvalidInput
from userdesk.http.web.render import (
    ConsoleRoute,
    Viewer,
    ViewerDep,
    field_errors,
    page,
    redirect,
)
from userdesk.queries import webhooks as webhook_queries
from userdesk.views import DeliveryView
from userdesk.webhooks.worker import Status

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE = 25
BADGE = {Status.DELIVERED: "active", Status.QUEUED: "pending", Status.FAILED: "deactivated"}


async def _list_page(
    request: Request,
    viewer: Viewer,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    database: Database = request.app.state.database
    async with database.reader() as session:
        endpoints = await webhook_queries.list_webhooks(session, viewer=viewer.actor)
    return page(
        "webhooks.html",
        status=status,
        viewer=viewer,
        section="webhooks",
        endpoints=endpoints,
        events=EVENTS,
        form=form or {"url": "", "description": "", "events": [], "allow_private_network": False},
        errors=errors or {},
    )


async def _endpoint_page(
    request: Request, viewer: Viewer, webhook_id: str, *, secret: str | None = None
) -> Response:
    database: Database = request.app.state.database
    cursor = request.query_params.get("cursor", "")[:500] or None
    async with database.reader() as session:
        endpoint = await webhook_queries.get_webhook(
            session, viewer=viewer.actor, webhook_id=webhook_id
        )
        log = await webhook_queries.list_deliveries(
            session, viewer=viewer.actor, webhook_id=webhook_id, limit=PAGE_SIZE, cursor=cursor
        )
    return page(
        "webhook.html",
        viewer=viewer,
        section="webhooks",
        endpoint=endpoint,
        deliveries=[DeliveryView.of(d, row) for d, row in log.items],
        next_cursor=log.next_cursor,
        secret=secret,
        badge=BADGE,
    )


@router.get("/webhooks", response_class=HTMLResponse)
async def webhooks_page(request: Request, viewer: ViewerDep) -> Response:
    return await _list_page(request, viewer)


@router.post("/webhooks", response_class=HTMLResponse)
async def register(request: Request, viewer: ViewerDep) -> Response:
    submitted = await request.form()
    form = {
        "url": str(submitted.get("url", "")),
        "description": str(submitted.get("description", "")),
        "events": [str(e) for e in submitted.getlist("events")],
        "allow_private_network": submitted.get("allow_private_network") == "on",
    }
    database: Database = request.app.state.database
    try:
        data = WebhookCreate.model_validate(form)
        async with database.transaction() as session:
            made = await webhook_actions.create_webhook(session, actor=viewer.actor, data=data)
            webhook_id = made.endpoint.public_id
    except ValidationError as exc:
        errors = field_errors(InvalidInput.from_pydantic(exc.errors(), drop_location=False))
        return await _list_page(request, viewer, form=form, errors=errors, status=422)
    except InvalidInput as exc:
        return await _list_page(request, viewer, form=form, errors=field_errors(exc), status=422)
    return await _endpoint_page(request, viewer, webhook_id, secret=made.secret)


@router.get("/webhooks/{webhook_id}", response_class=HTMLResponse)
async def endpoint_page(request: Request, webhook_id: str, viewer: ViewerDep) -> Response:
    return await _endpoint_page(request, viewer, webhook_id)


@router.post("/webhooks/{webhook_id}/ping", response_class=HTMLResponse)
async def ping(request: Request, webhook_id: str, viewer: ViewerDep) -> Response:
    async with request.app.state.database.transaction() as session:
        await webhook_actions.ping(session, actor=viewer.actor, webhook_id=webhook_id)
    return redirect(request, f"/webhooks/{webhook_id}")


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", response_class=HTMLResponse
)
async def redeliver(
    request: Request, webhook_id: str, delivery_id: int, viewer: ViewerDep
) -> Response:
    async with request.app.state.database.transaction() as session:
        await webhook_actions.redeliver(
            session, actor=viewer.actor, webhook_id=webhook_id, delivery_id=delivery_id
        )
    return redirect(request, f"/webhooks/{webhook_id}")


@router.post("/webhooks/{webhook_id}/active", response_class=HTMLResponse)
async def set_active(request: Request, webhook_id: str, viewer: ViewerDep) -> Response:
    active = (await request.form()).get("active") == "true"
    async with request.app.state.database.transaction() as session:
        await webhook_actions.update_webhook(
            session, actor=viewer.actor, webhook_id=webhook_id, data=WebhookUpdate(active=active)
        )
    return redirect(request, f"/webhooks/{webhook_id}")


@router.post("/webhooks/{webhook_id}/rotate", response_class=HTMLResponse)
async def rotate(request: Request, webhook_id: str, viewer: ViewerDep) -> Response:
    async with request.app.state.database.transaction() as session:
        made = await webhook_actions.update_webhook(
            session,
            actor=viewer.actor,
            webhook_id=webhook_id,
            data=WebhookUpdate(rotate_secret=True),
        )
    return await _endpoint_page(request, viewer, webhook_id, secret=made.secret)


@router.post("/webhooks/{webhook_id}/delete", response_class=HTMLResponse)
async def delete(request: Request, webhook_id: str, viewer: ViewerDep) -> Response:
    async with request.app.state.database.transaction() as session:
        await webhook_actions.delete_webhook(session, actor=viewer.actor, webhook_id=webhook_id)
    return redirect(request, "/webhooks")
