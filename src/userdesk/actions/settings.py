"""Workspace settings."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import seats
from userdesk.actions.audit import AuditEvent, diff, record
from userdesk.actions.context import Actor
from userdesk.actions.inputs import SettingsUpdate
from userdesk.errors import Conflict, InvalidInput
from userdesk.models import Role, Workspace
from userdesk.security.permissions import Permission
from userdesk.services import services_of

# Settings copied as given (validated by SettingsUpdate); name and seat_limit have rules here.
PLAIN_FIELDS = tuple(
    f for f in SettingsUpdate.model_fields if f not in ("name", "seat_limit", "smtp_password")
)


def _fields(workspace: Workspace) -> dict[str, object]:
    return {field: getattr(workspace, field) for field in SettingsUpdate.model_fields}


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
    for field in PLAIN_FIELDS:
        if field in fields:
            setattr(workspace, field, getattr(data, field))
    if "smtp_password" in fields:
        # Sealed with the server key: the database never holds it in clear, no API shows it.
        workspace.smtp_password = (
            services_of(session).sealer.seal(data.smtp_password) if data.smtp_password else None
        )
    if workspace.password_min_length > workspace.password_max_length:
        raise InvalidInput.one(
            "password_min_length",
            "above_maximum",
            f"must not exceed password_max_length ({workspace.password_max_length})",
        )
    if "two_factor_required_roles" in fields:
        names = sorted(set(data.two_factor_required_roles or []))
        known = set(await session.scalars(select(Role.name).where(Role.name.in_(names))))
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InvalidInput.one(
                "two_factor_required_roles", "unknown_role", f"no role named {unknown[0]}"
            )
        workspace.two_factor_required_roles = names
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
