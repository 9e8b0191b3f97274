"""Two-factor authentication with TOTP (RFC 6238) and single-use recovery codes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.models import RecoveryCode, User, Workspace
from userdesk.security import totp
from userdesk.services import services_of


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
