"""Rocket.Chat's login, logout and me."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from userdesk.actions import auth as auth_actions
from userdesk.actions.inputs import SignIn
from userdesk.errors import EmailUnverified, TooManyAttempts, TwoFactorCodeRequired
from userdesk.http.deps import DatabaseDep, actor_by_session
from userdesk.http.rocketchat.protocol import (
    API,
    RocketChatActor,
    WithAuthHeaders,
    body_of,
    me_shape,
    text,
)
from userdesk.queries import users as user_queries
from userdesk.security.randomness import SESSION_PREFIX

router = APIRouter(prefix=API.rstrip("/"), include_in_schema=False)
me_router = APIRouter(prefix=API.rstrip("/"), include_in_schema=False, route_class=WithAuthHeaders)


def _refused(error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"status": "error", "success": False, "error": error, "message": message, **extra},
        status_code=401,
    )


def _signed_in(user: Any, secret: str) -> dict[str, Any]:
    return {
        "status": "success",
        "success": True,
        "data": {"userId": user.public_id, "authToken": secret, "me": me_shape(user)},
    }


@router.post("/login")
async def login(request: Request, database: DatabaseDep) -> Any:
    """A username or address (`user`, `username` or `email`) and `password`, with the TOTP
    or recovery code in `code` or the x-2fa-code header when the user has 2FA; or `resume`
    with a token from an earlier login, still open. Answers the token as authToken."""
    body = await body_of(request)
    resume = text(body.get("resume"), "resume")
    if resume:
        # Only a login's token resumes; a personal access token is used as it is.
        actor = (
            await actor_by_session(request, database, resume)
            if resume.startswith(SESSION_PREFIX)
            else None
        )
        if actor is None:
            return _refused("Unauthorized", "Unauthorized")
        assert actor.public_id is not None
        async with database.reader() as session:
            user = await user_queries.get_user(session, viewer=actor, user_id=actor.public_id)
            return _signed_in(user, resume)
    login_name = body.get("user") or body.get("username") or body.get("email")
    if isinstance(login_name, dict):  # Meteor's {"user": {"username": ...}}
        login_name = login_name.get("username") or login_name.get("email")
    data = SignIn.model_validate(
        {
            "login": login_name,
            "password": body.get("password"),
            "code": body.get("code") or request.headers.get("x-2fa-code") or None,
        }
    )
    ip = request.client.host if request.client else None
    async with database.reader() as session:
        checked = await auth_actions.check_sign_in_password(session, data=data, ip=ip)
    async with database.transaction() as session:
        result = await auth_actions.sign_in(
            session, data=data, ip=ip, user_agent=request.headers.get("user-agent"), checked=checked
        )
        answer = _signed_in(result.user, result.secret) if result.user and result.secret else None
    if answer is not None:
        return answer
    refusal = result.refusal
    if isinstance(refusal, TwoFactorCodeRequired) and data.code:
        return _refused("totp-invalid", "Invalid TOTP provided")
    if isinstance(refusal, TwoFactorCodeRequired):
        return _refused(
            "totp-required",
            "TOTP Required",
            details={"method": "totp", "codeGenerated": False, "availableMethods": ["totp"]},
        )
    if isinstance(refusal, TooManyAttempts):
        raise refusal
    if isinstance(refusal, EmailUnverified):
        return _refused("error-invalid-email", refusal.message)
    return _refused("Unauthorized", "Unauthorized")


@router.post("/logout")
async def logout(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """Ends the login behind X-Auth-Token. A personal access token is not ended (revoke it
    with users.removePersonalAccessToken)."""
    token = request.headers.get("x-auth-token", "").strip()
    if token.startswith(SESSION_PREFIX):
        async with database.transaction() as session:
            await auth_actions.sign_out(session, actor=actor, secret=token)
    return {"status": "success", "success": True, "data": {"message": "You've been logged out!"}}


@me_router.get("/me")
async def me(actor: RocketChatActor, database: DatabaseDep) -> Any:
    assert actor.public_id is not None
    async with database.reader() as session:
        user = await user_queries.get_user(session, viewer=actor, user_id=actor.public_id)
        return {**me_shape(user), "success": True}
