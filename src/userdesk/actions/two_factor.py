"""Two-factor authentication with TOTP (RFC 6238) and single-use recovery codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from userdesk.actions.audit import AuditEvent, record_for_user
from userdesk.actions.context import Actor
from userdesk.actions.inputs import CurrentPassword, PasswordAndCode, TwoFactorCode
from userdesk.actions.outbox import notify_user
from userdesk.actions.passwords import end_access
from userdesk.actions.reauth import check_current_password
from userdesk.actions.rules import ensure_can_act_on, lock_user
from userdesk.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from userdesk.models import RecoveryCode, User, UserType, Workspace
from userdesk.queries.workspace import get_workspace
from userdesk.security import totp
from userdesk.security.permissions import Permission
from userdesk.services import services_of

SETUP_HINT = "POST /api/v1/me/two-factor/setup"


def has_two_factor(user: User) -> bool:
    return user.totp_enabled_at is not None and user.totp_secret is not None


def required_for(user: User, workspace: Workspace) -> bool:
    """Whether a role of the user is one the workspace requires 2FA for."""
    required = set(workspace.two_factor_required_roles or [])
    return bool(required) and any(role.name in required for role in user.roles)


async def verify_sign_in_code(session: AsyncSession, user: User, code: str) -> str | None:
    """Check a TOTP code (refusing any step already used) or a recovery code (used up here).
    Returns "totp" or "recovery_code" for a good code, None otherwise. The user's row is
    locked by the caller, so two requests cannot both spend one code."""
    services = services_of(session)
    now = services.clock.now()
    if totp.looks_like_totp(code):
        assert user.totp_secret is not None
        secret = services.sealer.open(user.totp_secret)
        step = totp.matching_step(secret, code, now)
        if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
            return None
        user.totp_last_step = step
        return "totp"
    recovery = await session.scalar(
        select(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.digest == totp.recovery_digest(code),
            RecoveryCode.used_at.is_(None),
        )
        .with_for_update()
    )
    if recovery is None:
        return None
    recovery.used_at = now
    return "recovery_code"


def _required(user: User, workspace: Workspace) -> bool:
    """The requirement binds humans only: a bot works with tokens and has nobody to hold an
    authenticator, so requiring 2FA of it would only lock it out."""
    return user.type is UserType.HUMAN and required_for(user, workspace)


def must_enrol_in(user: User, workspace: Workspace) -> bool:
    """must_enrol with the workspace at hand (`user.roles` loaded)."""
    return not has_two_factor(user) and bool(user.roles) and _required(user, workspace)


async def must_enrol(session: AsyncSession, user: User) -> bool:
    """A human without 2FA holding a role the workspace requires it for. `user.roles` must
    be loaded; the workspace is read only when the answer may be yes."""
    if has_two_factor(user) or not user.roles:
        return False
    return _required(user, await get_workspace(session))


@dataclass(frozen=True)
class TwoFactorStatus:
    enabled_at: datetime | None
    recovery_codes_left: int
    required: bool


@dataclass(frozen=True)
class Enrolment:
    """A pending secret, shown once so the user can add it to their authenticator app."""

    secret: str
    uri: str


async def _recovery_codes_left(session: AsyncSession, user: User) -> int:
    left = await session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    )
    return int(left or 0)


async def _lock_self(session: AsyncSession, actor: Actor) -> User:
    if actor.public_id is None:
        raise PermissionDenied("only a signed-in user has a second factor of their own")
    actor.ensure_own_credentials()
    return await lock_user(session, actor.public_id)


def _ensure_enabled(user: User) -> None:
    if not has_two_factor(user):
        raise Conflict("two-factor authentication is not on")


async def _replace_recovery_codes(session: AsyncSession, user: User) -> list[str]:
    """Delete every recovery code of the user and store digests of ten new ones."""
    now = services_of(session).clock.now()
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = totp.new_recovery_codes()
    session.add_all(
        RecoveryCode(user_id=user.id, digest=totp.recovery_digest(code), created_at=now)
        for code in codes
    )
    await session.flush()
    return codes


def _clear(user: User) -> None:
    user.totp_secret = None
    user.totp_pending_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None


async def two_factor_status(session: AsyncSession, *, actor: Actor) -> TwoFactorStatus:
    """The actor's own 2FA state; a read, allowed while enrolment is required."""
    if actor.user_id is None:
        raise PermissionDenied("only a signed-in user has a second factor of their own")
    user = await session.scalar(
        select(User).where(User.id == actor.user_id).options(selectinload(User.roles))
    )
    if user is None:
        raise NotFound("your account no longer exists")
    enabled = has_two_factor(user)
    return TwoFactorStatus(
        enabled_at=user.totp_enabled_at if enabled else None,
        recovery_codes_left=await _recovery_codes_left(session, user) if enabled else 0,
        required=_required(user, await get_workspace(session)),
    )


async def start_enrolment(
    session: AsyncSession, *, actor: Actor, data: CurrentPassword
) -> Enrolment:
    """Store a new sealed pending secret (replacing any earlier one); 2FA is not on until
    a code from it is confirmed."""
    user = await _lock_self(session, actor)
    if has_two_factor(user):
        raise Conflict("two-factor authentication is already on; disable it first")
    await check_current_password(session, actor=actor, user=user, password=data.password)
    services = services_of(session)
    secret = totp.new_secret()
    user.totp_pending_secret = services.sealer.seal(secret)
    workspace = await get_workspace(session)
    uri = totp.provisioning_uri(secret, account=user.username, issuer=workspace.name)
    return Enrolment(secret=secret, uri=uri)


async def confirm_enrolment(
    session: AsyncSession, *, actor: Actor, data: TwoFactorCode
) -> list[str]:
    """Turn 2FA on with a valid code of the pending secret; returns the new recovery codes.
    The code's step is marked used, so the same code cannot then sign in."""
    user = await _lock_self(session, actor)
    if has_two_factor(user):
        raise Conflict("two-factor authentication is already on")
    if user.totp_pending_secret is None:
        raise Conflict(f"no enrolment is under way; start one with {SETUP_HINT}")
    services = services_of(session)
    now = services.clock.now()
    pending = services.sealer.open(user.totp_pending_secret)
    step = totp.matching_step(pending, data.code, now)
    if step is None:
        raise InvalidInput.one("code", "wrong_code", "is not the current code of the new key")
    user.totp_secret = user.totp_pending_secret
    user.totp_pending_secret = None
    user.totp_enabled_at = now
    user.totp_last_step = step
    user.updated_at = now
    codes = await _replace_recovery_codes(session, user)
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.TWO_FACTOR_ENABLED,
        user=user,
        changes={
            "two_factor_enabled": {"before": False, "after": True},
            "totp_secret": {"changed": True},
            "recovery_codes": {"changed": True},
        },
    )
    await notify_user(session, user, "two_factor_changed", change="enabled")
    return codes


async def regenerate_recovery_codes(
    session: AsyncSession, *, actor: Actor, data: PasswordAndCode
) -> list[str]:
    """Ten new recovery codes; every earlier one, used or not, stops working. Needs the
    password and a current code: a stolen session and password alone must not yield a
    lasting way past the second factor."""
    user = await _lock_self(session, actor)
    _ensure_enabled(user)
    await check_current_password(session, actor=actor, user=user, password=data.password)
    if await verify_sign_in_code(session, user, data.code) is None:
        raise InvalidInput.one("code", "wrong_code", "is wrong or was already used")
    codes = await _replace_recovery_codes(session, user)
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.RECOVERY_CODES_REGENERATED,
        user=user,
        changes={"recovery_codes": {"changed": True}},
    )
    await notify_user(session, user, "two_factor_changed", change="recovery_codes_regenerated")
    return codes


async def disable_two_factor(session: AsyncSession, *, actor: Actor, data: PasswordAndCode) -> User:
    """Turn one's own 2FA off, with the password and a TOTP or recovery code; refused while a
    role of the user requires 2FA."""
    user = await _lock_self(session, actor)
    _ensure_enabled(user)
    workspace = await get_workspace(session)
    if _required(user, workspace):
        roles = sorted(r.name for r in user.roles if r.name in workspace.two_factor_required_roles)
        raise Conflict(
            f"the workspace requires two-factor authentication for the role {', '.join(roles)} "
            "(setting two_factor_required_roles), so it cannot be turned off"
        )
    await check_current_password(session, actor=actor, user=user, password=data.password)
    if await verify_sign_in_code(session, user, data.code) is None:
        raise InvalidInput.one("code", "wrong_code", "is wrong or was already used")
    _clear(user)
    user.updated_at = services_of(session).clock.now()
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.TWO_FACTOR_DISABLED,
        user=user,
        changes={"two_factor_enabled": {"before": True, "after": False}},
    )
    await notify_user(session, user, "two_factor_changed", change="disabled")
    return user


async def reset_two_factor(session: AsyncSession, *, actor: Actor, user_id: str) -> User:
    """The Users page's "Reset TOTP": the secret and recovery codes go, every session and
    token of the user ends, and the user is told by email. They enrol again after signing
    in with their password."""
    actor.require(Permission.USERS_RESET_CREDENTIALS)
    user = await lock_user(session, user_id)
    ensure_can_act_on(actor, user, doing="resetting the two-factor authentication of")
    if not has_two_factor(user):
        raise Conflict(f"{user.username} has no two-factor authentication to reset")
    now = services_of(session).clock.now()
    _clear(user)
    user.updated_at = now
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    ended = await end_access(session, user, now=now)
    await notify_user(session, user, "two_factor_reset")
    await session.flush()
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.TWO_FACTOR_RESET,
        user=user,
        changes={
            "two_factor_enabled": {"before": True, "after": False},
            "sessions": {"before": ended, "after": 0},
            "email": {"before": None, "after": "queued"},
        },
    )
    return user
