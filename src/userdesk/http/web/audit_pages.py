"""The Audit log page: every change, newest first, filtered by actor, target, action and
date, and exported as CSV with the same filters.

People are filtered by username or id: a username is looked up among current users, and an
id also finds the entries of a user who has since been deleted (entries keep ids and name
snapshots). Dates are whole UTC days, `from` inclusive and `to` inclusive.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.audit import AuditEvent
from userdesk.db import Database
from userdesk.errors import InvalidInput
from userdesk.http.web.render import (
    ConsoleRoute,
    ViewerDep,
    is_htmx,
    page,
)
from userdesk.models import AuditEntry
from userdesk.queries import audit as audit_queries
from userdesk.security.permissions import Permission

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE = 50
CSV_COLUMNS = (
    "id",
    "at",
    "actor_id",
    "actor_name",
    "action",
    "target_type",
    "target_id",
    "target_name",
    "changes",
    "ip",
    "user_agent",
)
# A cell a spreadsheet would run as a formula (CSV injection): names are typed by users.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    target: str = ""
    action: str = ""
    since: str = ""
    until: str = ""
    cursor: str = ""

    @classmethod
    def parse(cls, params: dict[str, str]) -> AuditFilters:
        return cls(
            actor=params.get("actor", "").strip()[:64],
            target=params.get("target", "").strip()[:64],
            action=params.get("action", "")[:64],
            since=params.get("from", "")[:10],
            until=params.get("to", "")[:10],
            cursor=params.get("cursor", "")[:200],
        )

    def query(self, **changes: str) -> str:
        values = {
            "actor": self.actor,
            "target": self.target,
            "action": self.action,
            "from": self.since,
            "to": self.until,
            "cursor": self.cursor,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def active(self) -> bool:
        return any((self.actor, self.target, self.action, self.since, self.until))


def _day(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput.one(field, "date", "must be a date as YYYY-MM-DD") from None


def _day_after(day: date) -> datetime:
    """The end of `day` (UTC), exclusive; the last day there is ends with the calendar."""
    try:
        return datetime.combine(day + timedelta(days=1), time(), UTC)
    except OverflowError:
        return datetime.combine(day, time.max, UTC)


async def _criteria(session: AsyncSession, filters: AuditFilters) -> dict[str, Any]:
    since, until = _day(filters.since, "from"), _day(filters.until, "to")
    if filters.action and filters.action not in {e.value for e in AuditEvent}:
        raise InvalidInput.one("action", "unknown_action", f"unknown action: {filters.action}")
    return {
        "actor": (
            await audit_queries.entry_subject(session, filters.actor, roles=False)
            if filters.actor
            else None
        ),
        "target": (
            await audit_queries.entry_subject(session, filters.target, roles=True)
            if filters.target
            else None
        ),
        "action": filters.action or None,
        "since": datetime.combine(since, time(), UTC) if since else None,
        "until": _day_after(until) if until else None,
    }


def _summary(changes: dict[str, Any]) -> list[tuple[str, str]]:
    """Each changed field as (name, "before → after"), short enough for a table cell."""

    def show(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 80 else text[:79] + "…"

    lines = []
    for name, change in changes.items():
        if isinstance(change, dict) and ("before" in change or "after" in change):
            lines.append((name, f"{show(change.get('before'))} → {show(change.get('after'))}"))
        else:
            lines.append((name, show(change)))
    return lines


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request, viewer: ViewerDep) -> Response:
    filters = AuditFilters.parse(dict(request.query_params))
    async with request.app.state.database.reader() as session:
        entries = await audit_queries.list_audit(
            session,
            viewer=viewer.actor,
            limit=PAGE_SIZE,
            cursor=filters.cursor or None,
            **await _criteria(session, filters),
        )
    values: dict[str, Any] = {
        "viewer": viewer,
        "filters": filters,
        "entries": [(entry, _summary(entry.changes)) for entry in entries.items],
        "next_cursor": entries.next_cursor,
        "actions": sorted(e.value for e in AuditEvent),
    }
    if is_htmx(request) and request.headers.get("hx-target") == "audit-results":
        # The export link follows the filters; so does the form, unless it asked (it keeps
        # the field being typed in, and its focus).
        from_form = request.headers.get("hx-trigger") == "audit-filters"
        return page("_audit_results.html", oob=True, from_form=from_form, **values)
    return page("audit.html", section="audit", oob=False, from_form=False, **values)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _row(entry: AuditEntry) -> list[str]:
    return [
        _cell(value)
        for value in (
            entry.id,
            entry.at.isoformat(),
            entry.actor_id,
            entry.actor_name,
            entry.action,
            entry.target_type,
            entry.target_id,
            entry.target_name,
            json.dumps(entry.changes, ensure_ascii=False, sort_keys=True),
            entry.ip,
            entry.user_agent,
        )
    ]


@router.get("/audit.csv")
async def audit_csv(request: Request, viewer: ViewerDep) -> Response:
    """Every entry the filters match, newest first, read in keyset pages as it streams."""
    viewer.actor.require(Permission.AUDIT_READ)
    filters = AuditFilters.parse(dict(request.query_params))
    database: Database = request.app.state.database
    async with database.reader() as session:
        criteria = await _criteria(session, filters)

    async def lines() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        cursor: str | None = None
        while True:
            async with database.reader() as session:
                batch = await audit_queries.list_audit(
                    session,
                    viewer=viewer.actor,
                    limit=audit_queries.MAX_LIMIT,
                    cursor=cursor,
                    **criteria,
                )
            for entry in batch.items:
                writer.writerow(_row(entry))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            cursor = batch.next_cursor
            if cursor is None:
                return

    stamp = database.services.clock.now().strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="userdesk-audit-{stamp}.csv"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
