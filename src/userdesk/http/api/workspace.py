"""/api/v1/settings, /api/v1/seats and /api/v1/audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from userdesk.actions import settings as settings_actions
from userdesk.actions.inputs import SettingsUpdate
from userdesk.http.deps import ActorDep, DatabaseDep
from userdesk.http.problems import problem_responses
from userdesk.queries import audit as audit_queries
from userdesk.queries import workspace as workspace_queries
from userdesk.views import AuditEntryView, AuditListView, SeatsView, SettingsView

router = APIRouter(prefix="/api/v1", tags=["workspace"], responses=problem_responses())


@router.get("/settings", response_model=SettingsView)
async def get_settings(actor: ActorDep, database: DatabaseDep) -> SettingsView:
    async with database.reader() as session:
        return SettingsView.of(await workspace_queries.get_settings(session, viewer=actor))


@router.patch("/settings", response_model=SettingsView)
async def update_settings(
    body: SettingsUpdate, actor: ActorDep, database: DatabaseDep
) -> SettingsView:
    async with database.transaction() as session:
        workspace = await settings_actions.update_settings(session, actor=actor, data=body)
        return SettingsView.of(workspace)


@router.get("/seats", response_model=SeatsView)
async def get_seats(actor: ActorDep, database: DatabaseDep) -> SeatsView:
    async with database.reader() as session:
        return SeatsView.of(await workspace_queries.get_seats(session, viewer=actor))


@router.get("/audit", response_model=AuditListView)
async def list_audit(
    actor: ActorDep,
    database: DatabaseDep,
    actor_id: Annotated[str | None, Query(alias="actor", max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=audit_queries.MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AuditListView:
    """Newest first. `actor` and `target` are ids (a role's id is its name); `since` and
    `until` are ISO 8601 times with an offset."""
    async with database.reader() as session:
        page = await audit_queries.list_audit(
            session,
            viewer=actor,
            actor=actor_id,
            target=target,
            action=action,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        return AuditListView(
            items=[AuditEntryView.of(e) for e in page.items], next_cursor=page.next_cursor
        )
