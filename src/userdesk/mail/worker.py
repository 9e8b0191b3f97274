"""The mail worker: delivers queued emails over SMTP, retrying with exponential backoff.

Rows are claimed and released through userdesk.queue (leases, SKIP LOCKED), as webhook
deliveries are. The SMTP conversation happens outside any transaction. A worker killed
mid-send leaves its rows claimed until the lease runs out; another worker then sends them
again with the same Message-ID, so no email is lost and a resend is recognisable. With no
SMTP server configured, rows are kept as "captured": the built-in mail catcher shows them
to admins and the server log shows their links.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib

from userdesk.actions.audit import AuditEvent, record
from userdesk.actions.context import Actor
from userdesk.actions.outbox import open_secrets
from userdesk.db import Database
from userdesk.errors import Conflict
from userdesk.mail.render import build_message, message_id_for, render
from userdesk.models import OutboxMessage, Workspace
from userdesk.queries.workspace import get_settings, get_workspace, own_email
from userdesk.queue import backoff, claim_due, finish
from userdesk.security.sealing import SealingError

log = logging.getLogger("userdesk.mail")

SMTP_TIMEOUT = 30.0  # a conversation's timeouts add up to less than the lease


class Status:
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    CAPTURED = "captured"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # none, starttls, tls
    username: str | None
    password: str | None
    from_address: str
    from_name: str | None

    @classmethod
    def of(cls, workspace: Workspace, open_sealed: Callable[[str], str]) -> SmtpSettings | None:
        if not workspace.smtp_host:
            return None
        security = workspace.smtp_security
        default_port = {"tls": 465, "starttls": 587}.get(security, 25)
        return cls(
            host=workspace.smtp_host,
            port=workspace.smtp_port or default_port,
            security=security,
            username=workspace.smtp_username,
            password=open_sealed(workspace.smtp_password) if workspace.smtp_password else None,
            from_address=workspace.mail_from_address or f"userdesk@{workspace.smtp_host}",
            from_name=workspace.mail_from_name or workspace.name,
        )


Sender = Callable[[EmailMessage, SmtpSettings], Awaitable[str]]


async def smtp_send(message: EmailMessage, smtp: SmtpSettings) -> str:
    """Send one message; returns the server's answer. Raises on refusal or network error."""
    _, answer = await aiosmtplib.send(
        message,
        hostname=smtp.host,
        port=smtp.port,
        username=smtp.username,
        password=smtp.password,
        use_tls=smtp.security == "tls",
        start_tls=smtp.security == "starttls",
        timeout=SMTP_TIMEOUT,
    )
    return answer


def render_row(row: OutboxMessage, workspace: Workspace, database: Database) -> tuple[str, Any]:
    """The row's email, rendered with its secrets opened: (recipient, RenderedEmail)."""
    payload = row.payload
    rendered = render(
        payload["template"],
        context=payload.get("context", {}),
        secrets=open_secrets(payload, database.services.sealer),
        workspace_name=workspace.name,
        public_url=database.services.public_url,
    )
    return payload["to"], rendered


@dataclass(frozen=True)
class CaughtEmail:
    """An outbox row's email as admins read it (the REST mail catcher and the console's)."""

    row: OutboxMessage
    to: str
    subject: str
    text: str
    html: str


def read_row(row: OutboxMessage, workspace: Workspace, database: Database) -> CaughtEmail:
    """The row's email rendered as sent, or, when it cannot be rendered, why: shown, not
    hidden, since the row is failed for the same reason."""
    try:
        to, rendered = render_row(row, workspace, database)
    except Exception as exc:
        return CaughtEmail(row, row.payload.get("to", ""), "(cannot be rendered)", str(exc), "")
    return CaughtEmail(row, to, rendered.subject, rendered.text, rendered.html)


class MailWorker:
    def __init__(self, database: Database, *, batch: int = 20, sender: Sender = smtp_send) -> None:
        self.database = database
        self.batch = batch
        self.sender = sender

    async def _claim(self) -> tuple[list[OutboxMessage], Workspace]:
        now = self.database.services.clock.now()
        async with self.database.transaction() as session:
            rows = await claim_due(session, kind_prefix="email.", batch=self.batch, now=now)
            domain = _domain(self.database.services.public_url)
            for row in rows:
                row.message_id = row.message_id or message_id_for(
                    row.id, domain, salt=row.created_at.isoformat()
                )
            workspace = await get_workspace(session)
            session.expunge_all()
        return rows, workspace

    async def _finish(self, row: OutboxMessage, **values: Any) -> None:
        if not await finish(self.database, row.id, claim=row.claimed_until, **values):
            log.warning("email %s was claimed again meanwhile; this outcome is dropped", row.id)

    async def run_once(self) -> int:
        """Deliver (or capture) one batch of due emails; returns how many rows were handled."""
        rows, workspace = await self._claim()
        if not rows:
            return 0
        sealer = self.database.services.sealer
        try:
            smtp = SmtpSettings.of(workspace, sealer.open)
        except SealingError as exc:
            log.error("cannot read the SMTP password: %s", exc)
            smtp = None
        for row in rows:
            await self._deliver(row, workspace, smtp)
        return len(rows)

    async def _deliver(
        self, row: OutboxMessage, workspace: Workspace, smtp: SmtpSettings | None
    ) -> None:
        now = self.database.services.clock.now()
        try:
            to, rendered = render_row(row, workspace, self.database)
        except Exception as exc:  # a row that can never render: fail it, keep the others
            log.error("email %s cannot be rendered: %s", row.id, exc)
            await self._finish(row, status=Status.FAILED, last_error=f"render: {exc}"[:1000])
            return
        if smtp is None:
            secrets = open_secrets(row.payload, self.database.services.sealer)
            links = " ".join(v for v in secrets.values() if v.startswith("http"))
            log.info(
                "mail catcher: email %s to %s, %r%s",
                row.id,
                to,
                rendered.subject,
                f"; link: {links}" if links else "",
            )
            await self._finish(row, status=Status.CAPTURED)
            return
        assert row.message_id is not None
        try:
            message = build_message(
                rendered,
                to=to,
                from_address=smtp.from_address,
                from_name=smtp.from_name,
                message_id=row.message_id,
                date=now,
            )
        except ValueError as exc:  # an address no header can carry: no retry will help
            log.error("email %s cannot be addressed: %s", row.id, exc)
            await self._finish(row, status=Status.FAILED, last_error=f"address: {exc}"[:1000])
            return
        attempts = row.attempts + 1
        try:
            answer = await self.sender(message, smtp)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            failed = attempts >= workspace.mail_max_attempts
            log.warning(
                "email %s to %s: attempt %d failed%s: %s",
                row.id,
                to,
                attempts,
                " for the last time" if failed else "",
                exc,
            )
            await self._finish(
                row,
                attempts=attempts,
                status=Status.FAILED if failed else Status.QUEUED,
                next_attempt_at=now + backoff(attempts),
                last_error=str(exc)[:1000] or type(exc).__name__,
            )
            return
        await self._finish(
            row,
            attempts=attempts,
            status=Status.SENT,
            sent_at=self.database.services.clock.now(),
            last_error=None,
        )
        log.info("email %s sent to %s: %s", row.id, to, answer.strip())


def _domain(public_url: str) -> str:
    """The host of the public URL, for Message-IDs. An IP address or no host gives the
    reserved name userdesk.invalid (RFC 2606): a Message-ID's right side must be unique with
    its left side, not resolvable."""
    host = urlsplit(public_url).hostname or ""
    if not host or not any(c.isalpha() for c in host) or ":" in host:
        return "userdesk.invalid"
    return host


@dataclass(frozen=True)
class TestResult:
    ok: bool
    answer: str  # the SMTP server's answer, or why it could not be reached


async def send_test_email(database: Database, *, actor: Actor, to: str | None) -> TestResult:
    """The "send test email" action (settings.manage): the "test" email goes out at once
    with the workspace's SMTP settings (no outbox, no retry) to `to`, or to the actor's own
    address; the answer is the server's, and the attempt is in the audit log."""
    async with database.reader() as session:
        workspace = await get_settings(session, viewer=actor)
        to = to or await own_email(session, viewer=actor)
    if to is None:
        raise Conflict("give `to`: the operator has no address of their own", field="to")
    smtp = SmtpSettings.of(workspace, database.services.sealer.open)
    if smtp is None:
        raise Conflict(
            "email is not configured: set smtp_host (and the other smtp_ settings) first",
            field="smtp_host",
        )
    rendered = render(
        "test",
        context={"requested_by": actor.name},
        secrets={},
        workspace_name=workspace.name,
        public_url=database.services.public_url,
    )
    domain = _domain(database.services.public_url)
    message = build_message(
        rendered,
        to=to,
        from_address=smtp.from_address,
        from_name=smtp.from_name,
        message_id=f"<userdesk.test.{random.getrandbits(64):x}@{domain}>",
        date=database.services.clock.now(),
    )
    try:
        result = TestResult(ok=True, answer=(await smtp_send(message, smtp)).strip())
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        result = TestResult(ok=False, answer=str(exc) or type(exc).__name__)
    async with database.transaction() as session:
        await record(
            session,
            actor=actor,
            event=AuditEvent.TEST_EMAIL_SENT,
            target_type="workspace",
            target_id=None,
            target_name=workspace.name,
            changes={
                "to": {"before": None, "after": to},
                "ok": {"before": None, "after": result.ok},
            },
        )
    return result
