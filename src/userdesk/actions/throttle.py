"""Brute-force defence for sign-in: growing delays, a temporary lockout, a per-address cap.

Failures are counted in the database (sign_in_throttles), so every server process sees the
same counts, and under a row lock, so parallel guesses cannot slip past the count. Keys:

- "account:<id>" for a real account, "login:<folded login>" for a name that matches nobody.
  Both behave alike (same delays, same lockout), so throttling reveals no account's existence.
- "ip:<address>" (IPv6 by its /64 network), for spraying many accounts from one place.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.audit import AuditEvent, record_for_user
from userdesk.actions.context import Actor
from userdesk.actions.rules import ensure_can_act_on, lock_user
from userdesk.db import dialect_of
from userdesk.errors import TooManyAttempts
from userdesk.models import SignInThrottle, User, Workspace
from userdesk.queries.workspace import get_workspace
from userdesk.security.permissions import Permission
from userdesk.services import services_of

DELAY_AFTER = 3  # failures in a row before each attempt must wait
MAX_DELAY_SECONDS = 30
# Counts this old matter to no rule (the longest lockout setting is a day): they are purged,
# so addresses that failed once long ago don't pile up.
FORGET_AFTER = timedelta(days=2)


def account_key(user: User) -> str:
    return f"account:{user.id}"


def login_key(folded_login: str) -> str:
    return f"login:{folded_login[:180]}"


def ip_key(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return f"ip:{ip[:64]}"
    if address.version == 6:
        return f"ip:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"ip:{address}"


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def _window_of(workspace: Workspace) -> timedelta:
    return timedelta(minutes=workspace.lockout_minutes)


async def _rows(
    session: AsyncSession, keys: list[str], *, for_update: bool
) -> dict[str, SignInThrottle]:
    query = select(SignInThrottle).where(SignInThrottle.key.in_(keys))
    if for_update:
        query = query.with_for_update()
    rows = await session.scalars(query.execution_options(populate_existing=True))
    return {row.key: row for row in rows}


async def refusal(
    session: AsyncSession, *, subject: str, ip: str | None, workspace: Workspace
) -> TooManyAttempts | None:
    """Why no attempt may be judged now, or None. Locks the rows until the attempt is done."""
    now = services_of(session).clock.now()
    address = ip_key(ip)
    # The subject's row is locked, so parallel guesses at one account are judged one by one;
    # the address's row is only read, so people behind one proxy don't queue behind each other.
    own = (await _rows(session, [subject], for_update=True)).get(subject)
    if own is not None and own.locked_until is not None and own.locked_until > now:
        return TooManyAttempts(
            "too many failed sign-ins: this account is locked for now; "
            "try again later or ask an administrator to unlock it",
            retry_after=_seconds_until(own.locked_until, now),
        )
    if own is not None and own.next_attempt_at is not None and own.next_attempt_at > now:
        return TooManyAttempts(
            "too many failed sign-ins: wait before trying again",
            retry_after=_seconds_until(own.next_attempt_at, now),
        )
    by_address = (
        (await _rows(session, [address], for_update=False)).get(address) if address else None
    )
    if (
        by_address is not None
        and now - by_address.window_started_at < _window_of(workspace)
        and by_address.failures >= workspace.ip_failure_limit
    ):
        return TooManyAttempts(
            "too many failed sign-ins from this network: try again later",
            retry_after=_seconds_until(by_address.window_started_at + _window_of(workspace), now),
        )
    return None


async def _ensure_rows(session: AsyncSession, keys: list[str], now: datetime) -> None:
    insert = pg_insert if dialect_of(session) == "postgresql" else sqlite_insert
    await session.execute(
        insert(SignInThrottle)
        .values(
            [
                {"key": key, "failures": 0, "window_started_at": now, "last_failure_at": now}
                for key in keys
            ]
        )
        .on_conflict_do_nothing(index_elements=["key"])
    )


async def note_failure(
    session: AsyncSession,
    *,
    subject: str,
    ip: str | None,
    workspace: Workspace,
    user: User | None,
    actor: Actor,
) -> None:
    """Count a failed attempt; lock the subject once the threshold is reached."""
    now = services_of(session).clock.now()
    window = _window_of(workspace)
    address = ip_key(ip)
    # Rows another attempt holds are skipped (PostgreSQL), so purging never waits or deadlocks.
    forgotten = (
        select(SignInThrottle.key)
        .where(SignInThrottle.last_failure_at < now - FORGET_AFTER)
        .limit(100)
        .with_for_update(skip_locked=True)
    )
    await session.execute(delete(SignInThrottle).where(SignInThrottle.key.in_(forgotten)))
    await _ensure_rows(session, [subject] + ([address] if address else []), now)
    if address:
        # One atomic statement: the window restarts once it has run out.
        ran_out = SignInThrottle.window_started_at <= now - window
        await session.execute(
            update(SignInThrottle)
            .where(SignInThrottle.key == address)
            .values(
                failures=case((ran_out, 1), else_=SignInThrottle.failures + 1),
                window_started_at=case((ran_out, now), else_=SignInThrottle.window_started_at),
                last_failure_at=now,
            )
        )
    own = (await _rows(session, [subject], for_update=True))[subject]
    if own.failures and now - own.last_failure_at >= window:
        # A quiet spell as long as the lockout starts the count again.
        own.failures = 0
        own.window_started_at = now
        own.locked_until = None
        own.next_attempt_at = None
    own.failures += 1
    own.last_failure_at = now
    if own.failures >= DELAY_AFTER:
        delay = min(2 ** (own.failures - DELAY_AFTER), MAX_DELAY_SECONDS)
        own.next_attempt_at = now + timedelta(seconds=delay)
    if own.failures >= workspace.lockout_threshold and own.locked_until is None:
        own.locked_until = now + window
        if user is not None:
            await record_for_user(
                session,
                actor=actor,
                event=AuditEvent.ACCOUNT_LOCKED,
                user=user,
                changes={
                    "failures": {"before": None, "after": own.failures},
                    "locked_until": {"before": None, "after": own.locked_until.isoformat()},
                },
            )


async def note_success(session: AsyncSession, *, subject: str) -> None:
    """A successful sign-in clears the account's count (the address's count stays)."""
    await session.execute(delete(SignInThrottle).where(SignInThrottle.key == subject))


async def status(session: AsyncSession, *, viewer: Actor, user: User) -> dict[str, Any]:
    """{"locked", "locked_until", "failures"} of a user's sign-in throttle."""
    if viewer.user_id != user.id:
        viewer.require(Permission.USERS_RESET_CREDENTIALS)
    row = await session.get(SignInThrottle, account_key(user))
    now = services_of(session).clock.now()
    if row is None or now - row.last_failure_at >= _window_of(await get_workspace(session)):
        return {"locked": False, "locked_until": None, "failures": 0}
    locked = row.locked_until is not None and row.locked_until > now
    return {
        "locked": locked,
        "locked_until": row.locked_until if locked else None,
        "failures": row.failures,
    }


async def unlock(session: AsyncSession, *, actor: Actor, user_id: str) -> bool:
    """An admin ends a user's lockout and failure count; True when there was one to end."""
    actor.require(Permission.USERS_RESET_CREDENTIALS)
    user = await lock_user(session, user_id)
    ensure_can_act_on(actor, user, doing="unlocking")
    row = (await _rows(session, [account_key(user)], for_update=True)).get(account_key(user))
    if row is None:
        return False
    now = services_of(session).clock.now()
    was_locked = row.locked_until is not None and row.locked_until > now
    await session.delete(row)
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.ACCOUNT_UNLOCKED,
        user=user,
        changes={
            "failures": {"before": row.failures, "after": 0},
            "locked": {"before": was_locked, "after": False},
        },
    )
    return True
