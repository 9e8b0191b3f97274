"""Brute-force defence for sign-in: growing delays, a temporary lockout, a per-address cap.

Failures are counted in the database (sign_in_throttles), so every server process sees the
same counts, and under row locks, so parallel guesses cannot slip past the count. Three keys:

- "login:<folded login>", the name as typed: each failure in a row past the third makes the
  next attempt with that name wait (1 s, doubling, at most 30 s). Visible (429 with
  Retry-After), and the same for a name that matches nobody, so it reveals nothing.
- "account:<id>": failures against the account, whichever name was typed. At the threshold
  the account locks for a while. While locked, every attempt gets the same answer as a wrong
  password (the user is told by email), so a lockout cannot tell an attacker that a username
  and an email belong to one account.
- "ip:<address>" (IPv6 by its /64 network): a cap on failures from one place, for spraying.
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
from userdesk.actions.inputs import fold
from userdesk.actions.outbox import enqueue_email
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


def account_key(user: User | int) -> str:
    """The throttle row of a user's account (the user, or their row id)."""
    return f"account:{user if isinstance(user, int) else user.id}"


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
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:  # an IPv4 client seen through an IPv6 socket
            return f"ip:{mapped}"
        return f"ip:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"ip:{address}"


class AccountLocked:
    """The account is locked until `until`: the attempt is refused like a wrong password."""

    def __init__(self, until: datetime) -> None:
        self.until = until


def seconds_until(moment: datetime, now: datetime) -> int:
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
    session: AsyncSession,
    *,
    login: str,
    account: str | None,
    ip: str | None,
    workspace: Workspace,
    lock: bool = True,
) -> TooManyAttempts | AccountLocked | None:
    """Why no attempt may be judged now, or None. Locks the name's and the account's rows
    until the attempt is done, so parallel guesses are judged one by one; the address's row
    is only read, so people behind one proxy don't queue behind each other. With
    `lock=False`, only a look ahead (the judgement is made again under the lock)."""
    now = services_of(session).clock.now()
    rows = await _rows(session, [login] + ([account] if account else []), for_update=lock)
    typed = rows.get(login)
    if typed is not None and typed.next_attempt_at is not None and typed.next_attempt_at > now:
        return TooManyAttempts(
            "too many failed sign-ins: wait before trying again",
            retry_after=seconds_until(typed.next_attempt_at, now),
        )
    address = ip_key(ip)
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
            retry_after=seconds_until(by_address.window_started_at + _window_of(workspace), now),
        )
    locked = rows.get(account) if account else None
    if locked is not None and locked.locked_until is not None and locked.locked_until > now:
        return AccountLocked(locked.locked_until)
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


def _restart_if_quiet(row: SignInThrottle, now: datetime, window: timedelta) -> None:
    """A quiet spell as long as the lockout starts the count again."""
    if row.failures and now - row.last_failure_at >= window:
        row.failures = 0
        row.window_started_at = now
        row.locked_until = None
        row.next_attempt_at = None


async def note_failure(
    session: AsyncSession,
    *,
    login: str,
    account: str | None,
    ip: str | None,
    workspace: Workspace,
    user: User | None,
    actor: Actor,
) -> None:
    """Count a failed attempt against the name, the account and the address; delay the
    name's next attempt; lock the account once the threshold is reached."""
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
    keys = [login] + ([account] if account else [])
    await _ensure_rows(session, keys + ([address] if address else []), now)
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
    rows = await _rows(session, keys, for_update=True)
    for row in rows.values():
        _restart_if_quiet(row, now, window)
        row.failures += 1
        row.last_failure_at = now
    typed = rows[login]
    if typed.failures >= DELAY_AFTER:
        delay = min(2 ** (typed.failures - DELAY_AFTER), MAX_DELAY_SECONDS)
        typed.next_attempt_at = now + timedelta(seconds=delay)
    counted = rows.get(account) if account else None
    if (
        counted is not None
        and user is not None
        and counted.failures >= workspace.lockout_threshold
        and counted.locked_until is None
    ):
        counted.locked_until = now + window
        await _locked(session, user=user, actor=actor, row=counted)


async def _locked(session: AsyncSession, *, user: User, actor: Actor, row: SignInThrottle) -> None:
    """Audit the lockout and tell the user: their sign-ins are refused as wrong until it
    ends, so the email is how they learn why."""
    assert row.locked_until is not None
    until = row.locked_until.isoformat()
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.ACCOUNT_LOCKED,
        user=user,
        changes={
            "failures": {"before": None, "after": row.failures},
            "locked_until": {"before": None, "after": until},
        },
    )
    await enqueue_email(
        session,
        template="account_locked",
        to=user.email,
        context={
            "user_id": user.public_id,
            "name": user.name,
            "username": user.username,
            "failures": row.failures,
            "locked_until": until,
        },
    )


async def note_success(session: AsyncSession, *, login: str, account: str) -> None:
    """A successful sign-in clears the name's and the account's counts (the address's stay)."""
    await session.execute(delete(SignInThrottle).where(SignInThrottle.key.in_([login, account])))


def names_of(user: User) -> list[str]:
    """The login keys a user's own names give: their username and email as typed."""
    return [login_key(fold(user.username)), login_key(fold(user.email))]


async def forget(session: AsyncSession, user: User) -> None:
    """Drop the user's failure counts, lockout and delays (a reset by emailed link proves
    the mailbox, so the lockout has done its job)."""
    keys = [account_key(user), *names_of(user)]
    await session.execute(delete(SignInThrottle).where(SignInThrottle.key.in_(keys)))


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
    # The delays on the user's own names go too, so they can sign in at once.
    await session.execute(delete(SignInThrottle).where(SignInThrottle.key.in_(names_of(user))))
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
