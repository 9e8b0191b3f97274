"""Signing in and out with a password: server-side sessions behind a random cookie secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import seats, throttle, two_factor
from userdesk.actions.audit import AuditEvent, record, record_for_user
from userdesk.actions.context import Actor
from userdesk.actions.inputs import PasswordChange, SignIn, email_key, fold
from userdesk.actions.outbox import notify_user
from userdesk.actions.passwords import check_password, store_password
from userdesk.actions.reauth import check_current_password
from userdesk.actions.rules import ensure_can_act_on, lock_user
from userdesk.errors import (
    DomainError,
    EmailUnverified,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
    TwoFactorCodeRequired,
    Unauthenticated,
)
from userdesk.models import LoginSession, User, UserStatus, Workspace
from userdesk.queries.workspace import get_workspace
from userdesk.security.permissions import Permission
from userdesk.security.randomness import token_digest
from userdesk.services import services_of

FAILED = "wrong username, email or password"


@dataclass(frozen=True)
class SignInResult:
    """`user` and `secret` (the cookie value, shown once) on success; `refusal` otherwise.

    A refusal is an answer, not an exception, so the transaction that records it (the audit
    entry, the failure count) still commits; the adapter raises it afterwards."""

    user: User | None = None
    secret: str | None = None
    refusal: DomainError | None = None


async def _note_refusal(session: AsyncSession, attempt: Actor, user: User, reason: str) -> None:
    """The audit entry of a refused sign-in of a real user, with why."""
    await record_for_user(
        session,
        actor=attempt,
        event=AuditEvent.SIGN_IN_FAILED,
        user=user,
        changes={"reason": {"before": None, "after": reason}},
    )


async def _failed(
    session: AsyncSession,
    *,
    login: str,
    account: str | None,
    ip: str | None,
    workspace: Workspace,
    user: User | None,
    attempt: Actor,
    reason: str,
) -> SignInResult:
    if user is not None:
        await _note_refusal(session, attempt, user, reason)
    await throttle.note_failure(
        session,
        login=login,
        account=account,
        ip=ip,
        workspace=workspace,
        user=user,
        actor=attempt,
    )
    if reason == "wrong code":
        return SignInResult(
            refusal=TwoFactorCodeRequired("the two-factor code is wrong or was already used")
        )
    return SignInResult(refusal=Unauthenticated(FAILED))


@dataclass(frozen=True)
class PasswordCheck:
    """A sign-in's password, already hashed and compared by `check_sign_in_password` before the
    sign-in's transaction; it stands for that user (None: nobody, checked against the decoy)
    and that stored hash only."""

    user_id: str | None
    password_hash: str | None
    matched: bool
    # The account was locked: the decoy was hashed, the password never compared.
    locked: bool = False

    def answers(self, user: User | None, *, locked: bool) -> bool:
        if self.locked and not locked:
            return False  # unlocked since: the password itself must be compared now
        if user is None:
            return self.user_id is None
        return self.user_id == user.public_id and self.password_hash == user.password_hash


def _login_matches(login: str) -> ColumnElement[bool]:
    # Usernames cannot contain "@", so a login names at most one user.
    return or_(User.username_key == fold(login), User.email_key == email_key(login))


async def check_sign_in_password(
    session: AsyncSession, *, data: SignIn, ip: str | None
) -> PasswordCheck | None:
    """The first step of a sign-in, in a read-only session: the password hash (tens of
    milliseconds of CPU) is compared while no row is locked and, on SQLite, no write
    transaction is open, so sign-ins run in parallel on every core instead of queueing
    behind one another's hashing. `sign_in` then judges the attempt under its locks, using
    this answer if the user and the hash are still the same. None when the throttle refuses
    the attempt anyway (no hash is spent on it)."""
    found = (
        await session.execute(
            select(User.id, User.public_id, User.password_hash).where(_login_matches(data.login))
        )
    ).first()
    workspace = await get_workspace(session)
    refused = await throttle.refusal(
        session,
        login=throttle.login_key(fold(data.login)),
        account=throttle.account_key(found.id) if found is not None else None,
        ip=ip,
        workspace=workspace,
        lock=False,
    )
    if isinstance(refused, TooManyAttempts):
        return None
    locked = isinstance(refused, throttle.AccountLocked)
    password_hash = found.password_hash if found is not None else None
    passwords = services_of(session).passwords
    # Nothing more is read: the connection goes back to the pool (and SQLite's snapshot is
    # let go) for the tens of milliseconds of hashing.
    await session.rollback()
    # A locked account's attempt costs a hash too (against the decoy), as it always did.
    matched = await passwords.verify(None if locked else password_hash, data.password)
    return PasswordCheck(
        user_id=found.public_id if found is not None else None,
        password_hash=password_hash,
        matched=matched and not locked,
        locked=locked,
    )


async def sign_in(
    session: AsyncSession,
    *,
    data: SignIn,
    ip: str | None,
    user_agent: str | None,
    checked: PasswordCheck | None = None,
) -> SignInResult:
    """Password, then (when the user has 2FA) a TOTP or recovery code, under the throttle:
    growing delays and a temporary lockout per account, a cap per address. An unknown login
    costs the same hash check and is throttled alike, so answers reveal no account.
    `checked`, from `check_sign_in_password` just before, saves hashing under the locks."""
    services = services_of(session)
    found = (
        await session.execute(select(User.public_id, User.status).where(_login_matches(data.login)))
    ).first()
    if found is not None and found.status is UserStatus.PENDING:
        # The first sign-in moves the user between counters: workspace lock first, as always.
        await seats.lock_workspace(session)
    user = await lock_user(session, found.public_id) if found is not None else None
    workspace = await get_workspace(session)
    attempt = Actor(
        user_id=user.id if user else None,
        public_id=user.public_id if user else None,
        name=user.username if user else "anonymous",
        permissions=frozenset(),
        ip=ip,
        user_agent=user_agent,
    )
    login = throttle.login_key(fold(data.login))
    account = throttle.account_key(user) if user else None
    refused = await throttle.refusal(
        session, login=login, account=account, ip=ip, workspace=workspace
    )
    if isinstance(refused, TooManyAttempts):
        return SignInResult(refusal=refused)
    if isinstance(refused, throttle.AccountLocked):
        # Answered exactly like a wrong password, in the same time and with the same count
        # on the typed name (so its delays match a name of nobody's); the user was emailed.
        assert user is not None
        if checked is None:  # else the check already spent it
            await services.passwords.verify(None, data.password)
        await throttle.note_failure(
            session,
            login=login,
            account=None,
            ip=ip,
            workspace=workspace,
            user=None,
            actor=attempt,
        )
        await _note_refusal(session, attempt, user, "locked")
        return SignInResult(refusal=Unauthenticated(FAILED))
    failed = partial(
        _failed,
        session,
        login=login,
        account=account,
        ip=ip,
        workspace=workspace,
        user=user,
        attempt=attempt,
    )
    # Unknown users are checked against a decoy hash: the refusal takes as long either way.
    if checked is not None and checked.answers(user, locked=False):
        matched = checked.matched
    else:
        matched = await services.passwords.verify(
            user.password_hash if user else None, data.password
        )
    if user is None or not matched:
        return await failed(reason="wrong password")
    if user.status is UserStatus.DEACTIVATED:
        await _note_refusal(session, attempt, user, "deactivated")
        return SignInResult(
            refusal=Unauthenticated("this account is deactivated; ask an administrator")
        )
    if workspace.email_verification_required and not user.email_verified:
        await _note_refusal(session, attempt, user, "email not verified")
        return SignInResult(
            refusal=EmailUnverified(
                "verify your email address first: follow the link in the verification email "
                "(POST /api/v1/auth/verify-email/request sends a new one)"
            )
        )

    second_factor = None
    if two_factor.has_two_factor(user):
        if not data.code:
            # The password was right: say a code is needed. Not a failure, not a success.
            return SignInResult(
                refusal=TwoFactorCodeRequired(
                    "enter the code from your authenticator app, or a recovery code"
                )
            )
        second_factor = await two_factor.verify_sign_in_code(session, user, data.code)
        if second_factor is None:
            return await failed(reason="wrong code")
    now = services.clock.now()
    assert user.password_hash is not None
    if services.passwords.needs_rehash(user.password_hash):
        user.password_hash = await services.passwords.hash(data.password)
    changes = {"last_login_at": {"before": _iso(user.last_login_at), "after": now.isoformat()}}
    if second_factor is not None:
        changes["second_factor"] = {"before": None, "after": second_factor}
    if user.status is UserStatus.PENDING:
        await seats.move(session, user.type, UserStatus.PENDING, UserStatus.ACTIVE)
        user.status = UserStatus.ACTIVE
        changes["status"] = {"before": UserStatus.PENDING.value, "after": UserStatus.ACTIVE.value}
    user.last_login_at = now
    assert account is not None
    await throttle.note_success(session, login=login, account=account)
    secret = open_session(session, user, workspace=workspace, ip=ip, user_agent=user_agent)
    await session.flush()
    await record_for_user(
        session,
        actor=attempt,
        event=AuditEvent.SIGNED_IN,
        user=user,
        changes=changes,
    )
    return SignInResult(user=user, secret=secret)


def open_session(
    session: AsyncSession,
    user: User,
    *,
    workspace: Workspace,
    ip: str | None,
    user_agent: str | None,
) -> str:
    """Start a server-side session for a user whose credentials were just proven; returns
    its cookie secret (shown once; only its digest is kept)."""
    services = services_of(session)
    now = services.clock.now()
    secret = services.randomness.session_secret()
    session.add(
        LoginSession(
            public_id=services.randomness.public_id(),
            user_id=user.id,
            digest=token_digest(secret),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=workspace.session_max_hours),
            ip=ip,
            user_agent=user_agent[:500] if user_agent else None,
        )
    )
    return secret


async def sign_out(session: AsyncSession, *, actor: Actor, secret: str) -> None:
    """End the session behind this cookie secret, if it is the actor's and still open."""
    login_session = await session.scalar(
        select(LoginSession)
        .where(LoginSession.digest == token_digest(secret), LoginSession.revoked_at.is_(None))
        .with_for_update()
    )
    if login_session is None or login_session.user_id != actor.user_id:
        return
    login_session.revoked_at = services_of(session).clock.now()
    await record(
        session,
        actor=actor,
        event=AuditEvent.SIGNED_OUT,
        target_type="user",
        target_id=actor.public_id,
        target_name=actor.name,
        changes={"session": {"before": login_session.public_id, "after": None}},
    )


async def note_session_use(session: AsyncSession, *, session_id: int, at: datetime) -> None:
    """Keep the session alive; called at most once a minute per session."""
    login_session = await session.get(LoginSession, session_id)
    if login_session is not None:
        login_session.last_seen_at = at


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def change_own_password(
    session: AsyncSession, *, actor: Actor, data: PasswordChange, current_secret: str | None
) -> User:
    """With the current password; ends every other session of the user, keeps this one."""
    if actor.public_id is None:
        raise PermissionDenied("only a signed-in user has a password of their own")
    actor.ensure_own_credentials()
    services = services_of(session)
    user = await lock_user(session, actor.public_id)
    await check_current_password(
        session, actor=actor, user=user, password=data.current_password, field="current_password"
    )
    if data.new_password == data.current_password:
        raise InvalidInput.one("new_password", "unchanged", "must differ from the current password")
    await check_password(
        session, data.new_password, username=user.username, email=user.email, field="new_password"
    )
    now = services.clock.now()
    await store_password(session, user, data.new_password)
    user.require_password_change = False
    others = [LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None)]
    if current_secret:
        others.append(LoginSession.digest != token_digest(current_secret))
    await session.execute(update(LoginSession).where(*others).values(revoked_at=now))
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.PASSWORD_CHANGED,
        user=user,
        changes={"password": {"changed": True}, "require_password_change": {"after": False}},
    )
    await notify_user(session, user, "password_changed", by="you")
    return user


async def _session_owner(session: AsyncSession, actor: Actor, user_id: str) -> User:
    """Oneself, or anyone one may reset credentials of and does not outrank one."""
    if actor.public_id != user_id:
        actor.require(Permission.USERS_RESET_CREDENTIALS)
    user = await lock_user(session, user_id)
    ensure_can_act_on(actor, user, doing="managing the sessions of")
    return user


async def revoke_sessions(
    session: AsyncSession, *, actor: Actor, user_id: str, session_id: str | None = None
) -> int:
    """End one session of the user (by id) or all of them; returns how many ended."""
    user = await _session_owner(session, actor, user_id)
    conditions = [LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None)]
    if session_id is not None:
        conditions.append(LoginSession.public_id == session_id)
    ended = await session.execute(
        update(LoginSession).where(*conditions).values(revoked_at=services_of(session).clock.now())
    )
    count = int(getattr(ended, "rowcount", 0) or 0)
    if session_id is not None and count == 0:
        raise NotFound(f"no open session with id {session_id}")
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.SESSIONS_REVOKED,
        user=user,
        changes={"sessions": {"before": count, "after": 0}},
    )
    return count
