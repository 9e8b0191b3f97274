"""Workspace settings."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import seats
from userdesk.actions.audit import AuditEvent, diff, record
from userdesk.actions.context import Actor
from userdesk.actions.inputs import SettingsUpdate
from userdesk.errors import Conflict
from userdesk.models import Workspace
from userdesk.security.permissions import Permission

SESSION_FIELDS = ("session_idle_minutes", "session_max_hours")


def _fields(workspace: Workspace) -> dict[str, object]:
    return {
        "name": workspace.name,
        "seat_limit": workspace.seat_limit,
        **{field: getattr(workspace, field) for field in SESSION_FIELDS},
    }


async def update_settings(
    session: AsyncSession, *, actor: Actor, data: SettingsUpdate
) -> Workspace:
    actor.require(Permission.SETTINGS_MANAGE)
    workspace = await seats.lock_workspace(session)
    before = _fields(workspace)
    fields = data.model_fields_set
    if "seat_limit" in fields and data.seat_limit is not None:
        used = await seats.seats_used(session)
        if data.seat_limit < used:
            raise Conflict(
                f"seat_limit {data.seat_limit} is below the {used} seats in use; "
                "deactivate users first",
                field="seat_limit",
            )
    if "seat_limit" in fields:
        workspace.seat_limit = data.seat_limit
    if "name" in fields and data.name is not None:
        workspace.name = data.name
    for field in SESSION_FIELDS:
        if field in fields:
            setattr(workspace, field, getattr(data, field))
    changes = diff(before, _fields(workspace))
    if changes:
        await session.flush()
        await record(
            session,
            actor=actor,
            event=AuditEvent.SETTINGS_UPDATED,
            target_type="workspace",
            target_id=None,
            target_name=workspace.name,
            changes=changes,
        )
    return workspace
