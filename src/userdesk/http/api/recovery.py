"""Forgot password, email verification and one's own email change: emailed one-time links."""

from __future__ import annotations

from fastapi import APIRouter, Request

from userdesk.actions import recovery
from userdesk.actions.context import Actor
from userdesk.actions.inputs import (
    EmailChange,
    LinkCheck,
    PasswordForgot,
    PasswordResetByLink,
    VerificationRequest,
)
from userdesk.actions.outbox import queued_email_warning
from userdesk.db import Database
from userdesk.http.deps import ActorDep, DatabaseDep
from userdesk.http.problems import problem_responses
from userdesk.views import AcceptedView, LinkFollowedView, ResetLinkView, SentView, UserView

router = APIRouter(prefix="/api/v1", tags=["recovery"], responses=problem_responses())

RESET_REQUESTED = "if the account exists, a reset link was sent to its email address"
VERIFICATION_REQUESTED = (
    "if the address belongs to an account awaiting verification, a link was sent to it"
)


def _facts(request: Request) -> dict[str, str | None]:
    return {
        "ip": request.client.host if request.client else None,
        "user_agent": request.headers.get("user-agent"),
    }


@router.post("/auth/password/forgot", status_code=202, response_model=AcceptedView)
async def forgot_password(
    body: PasswordForgot, request: Request, database: DatabaseDep
) -> AcceptedView:
    """Email a single-use reset link (valid 30 minutes) to the account named by username
    or email. The answer is the same whether or not there is such an account."""
    async with database.transaction() as session:
        await recovery.request_password_reset(session, data=body, **_facts(request))
    return AcceptedView(detail=RESET_REQUESTED)


@router.post("/auth/password/reset/check", response_model=ResetLinkView)
async def check_reset_link(body: LinkCheck, database: DatabaseDep) -> ResetLinkView:
    """Whether a reset link still works (and whose it is), before asking for a password."""
    async with database.reader() as session:
        user, expires_at = await recovery.reset_link_user(session, data=body)
    return ResetLinkView(valid=True, username=user.username, expires_at=expires_at)


@router.post("/auth/password/reset", response_model=LinkFollowedView)
async def reset_password(
    body: PasswordResetByLink, request: Request, database: DatabaseDep
) -> LinkFollowedView:
    """Set a new password with the link's token. Every session and token of the user ends;
    sign in with the new password afterwards."""
    async with database.transaction() as session:
        user = await recovery.reset_password_by_link(session, data=body, **_facts(request))
        return LinkFollowedView(user=UserView.of(user))


@router.post("/auth/verify-email/request", status_code=202, response_model=AcceptedView)
async def request_verification(
    body: VerificationRequest, request: Request, database: DatabaseDep
) -> AcceptedView:
    """Email a new verification link to an address awaiting verification. The answer is the
    same whatever the address."""
    async with database.transaction() as session:
        await recovery.request_verification(session, data=body, **_facts(request))
    return AcceptedView(detail=VERIFICATION_REQUESTED)


@router.post("/auth/verify-email", response_model=LinkFollowedView)
async def verify_email(
    body: LinkCheck, request: Request, database: DatabaseDep
) -> LinkFollowedView:
    """Follow a verification link: the address is verified, or, for an email change, the
    account moves to the new address."""
    async with database.transaction() as session:
        user = await recovery.verify_email(session, data=body, **_facts(request))
        return LinkFollowedView(user=UserView.of(user))


async def _send_verification(database: Database, actor: Actor, user_id: str) -> SentView:
    async with database.transaction() as session:
        user = await recovery.send_verification(session, actor=actor, user_id=user_id)
        return SentView(
            detail=f"a verification link was sent to {user.email}",
            warning=await queued_email_warning(session),
        )


@router.post("/me/email/verification", status_code=202, response_model=SentView)
async def send_own_verification(actor: ActorDep, database: DatabaseDep) -> SentView:
    """Email a verification link (valid 48 hours) to one's own address."""
    assert actor.public_id is not None
    return await _send_verification(database, actor, actor.public_id)


@router.post("/users/{user_id}/email/verification", status_code=202, response_model=SentView)
async def send_user_verification(user_id: str, actor: ActorDep, database: DatabaseDep) -> SentView:
    """Email a verification link to a user's address (users.edit)."""
    return await _send_verification(database, actor, user_id)


@router.post("/me/email", status_code=202, response_model=SentView)
async def change_own_email(body: EmailChange, actor: ActorDep, database: DatabaseDep) -> SentView:
    """Change one's own address (the current password is required). A link goes to the new
    address; the address changes only when it is followed."""
    async with database.transaction() as session:
        await recovery.request_email_change(session, actor=actor, data=body)
        warning = await queued_email_warning(session)
    return SentView(
        detail=f"a link was sent to {body.email}; your address changes when you follow it",
        warning=warning,
    )
