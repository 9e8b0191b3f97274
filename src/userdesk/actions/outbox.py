"""Queue side effects as outbox rows in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.models import OutboxMessage
from userdesk.services import services_of


async def enqueue_email(
    session: AsyncSession, *, template: str, to: str, context: dict[str, Any]
) -> None:
    now = services_of(session).clock.now()
    session.add(
        OutboxMessage(
            kind=f"email.{template}",
            payload={"to": to, "template": template, "context": context},
            status="queued",
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
    )
