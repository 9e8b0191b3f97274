"""Two-factor authentication: one's own enrolment, recovery codes and disabling, and the
administrators' "Reset TOTP".

The /me routes call no permission check, so a user whose role requires 2FA can enrol while
every other route refuses them (two_factor_enrolment_required).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from userdesk.actions import two_factor as two_factor_actions
from userdesk.actions.inputs import CurrentPassword, PasswordAndCode, TwoFactorCode
from userdesk.actions.outbox import queued_email_warning
from userdesk.actions.two_factor import TwoFactorStatus
from userdesk.http.deps import ActorDep, DatabaseDep
from userdesk.http.problems import problem_responses
from userdesk.views import RecoveryCodesView, TwoFactorSetupView, TwoFactorStatusView, UserView

router = APIRouter(prefix="/api/v1", tags=["two-factor"], responses=problem_responses())


def _status_view(status: TwoFactorStatus) -> TwoFactorStatusView:
    return TwoFactorStatusView(
        enabled=status.enabled_at is not None,
        enabled_at=status.enabled_at,
        recovery_codes_left=status.recovery_codes_left,
        required=status.required,
    )


def _no_store(response: Response) -> None:
    """Answers carrying a secret must not linger in a cache."""
    response.headers["Cache-Control"] = "no-store"


@router.get("/me/two-factor", response_model=TwoFactorStatusView)
async def status(actor: ActorDep, database: DatabaseDep) -> TwoFactorStatusView:
    """Whether 2FA is on, since when, how many unused recovery codes are left, and whether
    a role of one's requires it."""
    async with database.reader() as session:
        return _status_view(await two_factor_actions.two_factor_status(session, actor=actor))


@router.post("/me/two-factor/setup", response_model=TwoFactorSetupView)
async def setup(
    body: CurrentPassword, actor: ActorDep, database: DatabaseDep, response: Response
) -> TwoFactorSetupView:
    """Start (or restart) enrolment with the current password: a new key, as base32 text,
    an otpauth:// URI and a QR code (SVG). 2FA is on once /confirm gets a code of it."""
    async with database.transaction() as session:
        enrolment = await two_factor_actions.start_enrolment(session, actor=actor, data=body)
    _no_store(response)
    return TwoFactorSetupView.of(enrolment.secret, enrolment.uri)


@router.post("/me/two-factor/confirm", response_model=RecoveryCodesView)
async def confirm(
    body: TwoFactorCode, actor: ActorDep, database: DatabaseDep, response: Response
) -> RecoveryCodesView:
    """Turn 2FA on with a code of the new key; answers the ten recovery codes, once."""
    async with database.transaction() as session:
        codes = await two_factor_actions.confirm_enrolment(session, actor=actor, data=body)
    _no_store(response)
    return RecoveryCodesView(recovery_codes=codes)


@router.post("/me/two-factor/recovery-codes", response_model=RecoveryCodesView)
async def regenerate(
    body: PasswordAndCode, actor: ActorDep, database: DatabaseDep, response: Response
) -> RecoveryCodesView:
    """Ten new recovery codes, answered once; the earlier ones stop working."""
    async with database.transaction() as session:
        codes = await two_factor_actions.regenerate_recovery_codes(session, actor=actor, data=body)
    _no_store(response)
    return RecoveryCodesView(recovery_codes=codes)


@router.post("/me/two-factor/disable", response_model=TwoFactorStatusView)
async def disable(
    body: PasswordAndCode, actor: ActorDep, database: DatabaseDep
) -> TwoFactorStatusView:
    """Turn 2FA off with the password and a code (TOTP or recovery); refused while a role
    of one's requires 2FA."""
    async with database.transaction() as session:
        await two_factor_actions.disable_two_factor(session, actor=actor, data=body)
        return _status_view(await two_factor_actions.two_factor_status(session, actor=actor))


@router.post("/users/{user_id}/two-factor/reset", response_model=UserView)
async def reset(user_id: str, actor: ActorDep, database: DatabaseDep) -> UserView:
    """Remove a user's 2FA (users.reset_credentials): key and recovery codes go, every
    session and token of theirs ends, and they are told by email."""
    async with database.transaction() as session:
        user = await two_factor_actions.reset_two_factor(session, actor=actor, user_id=user_id)
        view = UserView.of(user)
        view.warning = await queued_email_warning(session)
        return view
