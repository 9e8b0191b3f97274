"""Queue side effects as outbox rows in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.audit import AuditEvent, record
from userdesk.actions.context import Actor
from userdesk.errors import Conflict, NotFound
from userdesk.models import OutboxMessage
from userdesk.queries.cursors import MAX_ROW_ID
from userdesk.security.permissions import Permission
from userdesk.security.sealing import Sealer
from userdesk.services import services_of


def open_secrets(payload: dict[str, Any], sealer: Sealer) -> dict[str, str]:
    """The clear values of a queued email's sealed secrets."""
    return {k: sealer.open(v) for k, v in payload.get("secrets", {}).items()}


async def enqueue_email(
    session: AsyncSession,
    *,
    template: str,
    to: str,
    context: dict[str, Any],
    secrets: dict[str, str] | None = None,
) -> None:
    """Queue an email. `secrets` (a random password, a one-time link) are sealed with the
    server's key, so the queued row holds none of them in clear; `open_secrets` reads them
    back when the email is rendered."""
    services = services_of(session)
    now = services.clock.now()
    session.info["emails_queued"] = session.info.get("emails_queued", 0) + 1
    payload: dict[str, Any] = {"to": to, "template": template, "context": context}
    if secrets:
        payload["secrets"] = {k: services.sealer.seal(v) for k, v in secrets.items()}
    session.add(
        OutboxMessage(
            kind=f"email.{template}",
            payload=payload,
            status="queued",
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
    )


async def notify_user(session: AsyncSession, user: Any, template: str, **extra: Any) -> None:
    """Tell a user, at their address, of a change to their account's security (new password,
    2FA turned on or off, new recovery codes): if it was not them, they learn of it."""
    await enqueue_email(
        session,
        template=template,
        to=user.email,
        context={
            "user_id": user.public_id,
            "name": user.name,
            "username": user.username,
            **extra,
        },
    )


MAIL_NOT_CONFIGURED = (
    "email is not configured (no SMTP server in the settings): the email is kept in the "
    "built-in mail catcher (GET /api/v1/mail) and nobody receives it"
)


def mail_configured(workspace: Any) -> bool:
    return bool(workspace.smtp_host)


def email_warning(workspace: Any) -> str | None:
    """The warning an answer carries when the action queued email that cannot be delivered."""
    return None if mail_configured(workspace) else MAIL_NOT_CONFIGURED


# The emails an admin may queue again: a failed one, or one the mail catcher kept.
RETRIABLE = ("failed", "captured")


async def retry_email(session: AsyncSession, *, actor: Actor, email_id: int) -> OutboxMessage:
    """Queue a failed (or captured) email again, with a fresh count of attempts."""
    actor.require(Permission.SETTINGS_MANAGE)
    row = None
    if 0 < email_id <= MAX_ROW_ID:  # any other id is nobody's, and the database's to refuse
        row = await session.get(OutboxMessage, email_id, with_for_update=True)
    if row is None or not row.kind.startswith("email."):
        raise NotFound(f"no email with id {email_id}")
    if row.status not in RETRIABLE:
        raise Conflict(
            f"email {email_id} is {row.status}; only failed or captured ones are retried"
        )
    before = row.status
    row.status = "queued"
    row.attempts = 0
    row.next_attempt_at = services_of(session).clock.now()
    row.claimed_until = None
    await record(
        session,
        actor=actor,
        event=AuditEvent.EMAIL_RETRIED,
        target_type="email",
        target_id=str(row.id),
        target_name=row.payload.get("to"),
        changes={"status": {"before": before, "after": "queued"}},
    )
    return row


async def queued_email_warning(session: AsyncSession) -> str | None:
    """The warning for an answer: set when this transaction queued email that will not leave
    the server because no SMTP server is configured."""
    from userdesk.queries.workspace import get_workspace  # queries build on actions

    if not session.info.get("emails_queued"):
        return None
    return email_warning(await get_workspace(session))
