"""The built-in mail catcher and delivery status (GET /mail), retrying, and the test email."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from userdesk.actions.inputs import TestEmail
from userdesk.actions.outbox import retry_email
from userdesk.db import Database
from userdesk.http.deps import ActorDep, DatabaseDep
from userdesk.http.problems import problem_responses
from userdesk.mail import worker
from userdesk.models import OutboxMessage, Workspace
from userdesk.queries import mail as mail_queries
from userdesk.queries import workspace as workspace_queries

router = APIRouter(prefix="/api/v1", tags=["mail"], responses=problem_responses())


class MailView(BaseModel):
    id: int
    to: str
    subject: str
    text: str
    html: str
    status: str
    created_at: datetime
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    message_id: str | None


class MailListView(BaseModel):
    items: list[MailView]
    next_cursor: str | None


class TestEmailView(BaseModel):
    ok: bool
    answer: str


def _view(row: OutboxMessage, workspace: Workspace, database: Database) -> MailView:
    email = worker.read_row(row, workspace, database)
    return MailView(
        id=row.id,
        to=email.to,
        subject=email.subject,
        text=email.text,
        html=email.html,
        status=row.status,
        created_at=row.created_at,
        attempts=row.attempts,
        last_error=row.last_error,
        sent_at=row.sent_at,
        message_id=row.message_id,
    )


@router.get("/mail", response_model=MailListView)
async def list_mail(
    actor: ActorDep,
    database: DatabaseDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query()] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> MailListView:
    """Every email, newest first, rendered as sent (links and passwords included: admins
    only, settings.manage). With no SMTP server configured this is the mail catcher."""
    async with database.reader() as session:
        page = await mail_queries.list_mail(
            session, viewer=actor, status=status, limit=limit, cursor=cursor
        )
        workspace = await workspace_queries.get_workspace(session)
    return MailListView(
        items=[_view(row, workspace, database) for row in page.items],
        next_cursor=page.next_cursor,
    )


@router.post("/mail/{email_id}/retry", response_model=MailView)
async def retry(email_id: int, actor: ActorDep, database: DatabaseDep) -> MailView:
    """Queue a failed (or captured) email again (settings.manage)."""
    async with database.transaction() as session:
        row = await retry_email(session, actor=actor, email_id=email_id)
        workspace = await workspace_queries.get_workspace(session)
        return _view(row, workspace, database)


@router.post("/settings/email/test", response_model=TestEmailView)
async def test_email(body: TestEmail, actor: ActorDep, database: DatabaseDep) -> TestEmailView:
    """Send a test email now with the SMTP settings and report the server's answer
    (settings.manage). `to` defaults to one's own address."""
    result = await worker.send_test_email(database, actor=actor, to=body.to)
    return TestEmailView(ok=result.ok, answer=result.answer)
