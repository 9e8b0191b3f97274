"""Claiming outbox rows for delivery, shared by the mail and webhook workers.

Each round claims a batch of due rows of one kind in a short transaction (FOR UPDATE SKIP
LOCKED on PostgreSQL, so several workers never take the same row; SQLite runs one writer at
a time), marking them claimed for a lease. Delivery happens outside any transaction; a
worker killed mid-delivery leaves its rows claimed until the lease runs out, and another
worker then delivers them again: at least once, never lost.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.db import Database, dialect_of
from userdesk.models import OutboxMessage

LEASE = timedelta(minutes=5)  # longer than any one delivery's timeouts add up to
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=2)
QUEUED = "queued"


def backoff(attempts: int) -> timedelta:
    """30 s after the first failure, doubling, at most 2 h; a little jitter spreads retries."""
    delay = min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LAST_RETRY)
    return delay * random.uniform(0.9, 1.1)


async def claim_due(
    session: AsyncSession, *, kind_prefix: str, batch: int, now: datetime
) -> list[OutboxMessage]:
    """Due, unclaimed rows whose kind starts with `kind_prefix`, oldest first, now claimed
    for a lease (the caller's transaction commits the claim)."""
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.status == QUEUED,
            OutboxMessage.next_attempt_at <= now,
            OutboxMessage.kind.startswith(kind_prefix),
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
        )
        .order_by(OutboxMessage.id)
        .limit(batch)
    )
    if dialect_of(session) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(await session.scalars(query))
    for row in rows:
        row.claimed_until = now + LEASE
    return rows


async def release(
    session: AsyncSession, row_id: int, *, claim: datetime | None, **values: Any
) -> bool:
    """Record how a claimed row's delivery went and release the claim: `claim` is the
    claimed_until this worker set. A row claimed again since (this worker stalled past its
    lease, and another took the row and may have delivered it) or deleted in the meantime,
    with its webhook endpoint, is let be; returns whether the row was released."""
    row = await session.get(OutboxMessage, row_id, with_for_update=True, populate_existing=True)
    if row is None or row.claimed_until != claim:
        return False
    for key, value in values.items():
        setattr(row, key, value)
    row.claimed_until = None
    return True


async def finish(database: Database, row_id: int, *, claim: datetime | None, **values: Any) -> bool:
    """`release` in a transaction of its own."""
    async with database.transaction() as session:
        return await release(session, row_id, claim=claim, **values)
