"""Sign-in, sign-out, the signed-in user, own password and sessions, and users' sessions."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from userdesk.actions import auth as auth_actions
from userdesk.actions.context import Actor
from userdesk.actions.inputs import PasswordChange, SignIn
from userdesk.db import Database
from userdesk.errors import Unauthenticated
from userdesk.http.deps import SESSION_COOKIE, ActorDep, DatabaseDep
from userdesk.http.problems import problem_responses
from userdesk.queries import sessions as session_queries
from userdesk.queries import users as user_queries
from userdesk.security.randomness import token_digest
from userdesk.views import SessionListView, SessionView, SignedInView, UserView

router = APIRouter(prefix="/api/v1", tags=["sign-in"], responses=problem_responses())


@router.post("/auth/login", response_model=SignedInView)
async def login(
    body: SignIn, request: Request, response: Response, database: DatabaseDep
) -> SignedInView:
    """Sign in with a username or email and the password. Sets the session cookie
    (HttpOnly, SameSite=Lax, Secure unless USERDESK_COOKIE_SECURE is false)."""
    ip = request.client.host if request.client else None
    async with database.reader() as session:  # the hash is compared outside any lock
        checked = await auth_actions.check_sign_in_password(session, data=body, ip=ip)
    async with database.transaction() as session:
        result = await auth_actions.sign_in(
            session,
            data=body,
            ip=ip,
            user_agent=request.headers.get("user-agent"),
            checked=checked,
        )
        view = SignedInView(user=UserView.of(result.user)) if result.user else None
    if view is None or result.secret is None:
        raise result.refusal or Unauthenticated(auth_actions.FAILED)
    settings = request.app.state.settings
    response.set_cookie(
        SESSION_COOKIE,
        result.secret,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    return view


@router.post("/auth/logout", status_code=204)
async def logout(
    request: Request, response: Response, actor: ActorDep, database: DatabaseDep
) -> Response:
    """End this session (with a token, nothing to end) and clear the cookie."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        async with database.transaction() as session:
            await auth_actions.sign_out(session, actor=actor, secret=secret)
    ended = Response(status_code=204)
    ended.delete_cookie(SESSION_COOKIE, path="/")
    return ended


@router.get("/me", response_model=UserView)
async def me(actor: ActorDep, database: DatabaseDep) -> UserView:
    """The signed-in user (by session cookie or bearer token)."""
    assert actor.public_id is not None
    async with database.reader() as session:
        return UserView.of(
            await user_queries.get_user(session, viewer=actor, user_id=actor.public_id)
        )


def _current_digest(request: Request) -> str | None:
    secret = request.cookies.get(SESSION_COOKIE)
    return token_digest(secret) if secret else None


@router.post("/me/password", response_model=UserView)
async def change_password(
    body: PasswordChange, request: Request, actor: ActorDep, database: DatabaseDep
) -> UserView:
    """Change one's own password (the current one is required). Every other session ends;
    a required password change is then done."""
    async with database.transaction() as session:
        user = await auth_actions.change_own_password(
            session, actor=actor, data=body, current_secret=request.cookies.get(SESSION_COOKIE)
        )
        return UserView.of(user)


async def _sessions(
    request: Request, actor: Actor, database: Database, user_id: str
) -> SessionListView:
    async with database.reader() as session:
        rows = await session_queries.list_sessions(session, viewer=actor, user_id=user_id)
    digest = _current_digest(request)
    return SessionListView(items=[SessionView.of(s, current_digest=digest) for s in rows])


@router.get("/me/sessions", response_model=SessionListView)
async def my_sessions(request: Request, actor: ActorDep, database: DatabaseDep) -> SessionListView:
    """One's open sessions: device (user agent), IP, last seen; `current` marks this one."""
    assert actor.public_id is not None
    return await _sessions(request, actor, database, actor.public_id)


@router.delete("/me/sessions/{session_id}", status_code=204)
async def end_my_session(session_id: str, actor: ActorDep, database: DatabaseDep) -> Response:
    assert actor.public_id is not None
    async with database.transaction() as session:
        await auth_actions.revoke_sessions(
            session, actor=actor, user_id=actor.public_id, session_id=session_id
        )
    return Response(status_code=204)


@router.get("/users/{user_id}/sessions", response_model=SessionListView)
async def user_sessions(
    user_id: str, request: Request, actor: ActorDep, database: DatabaseDep
) -> SessionListView:
    """Another user's open sessions (users.reset_credentials)."""
    return await _sessions(request, actor, database, user_id)


@router.delete("/users/{user_id}/sessions", status_code=204)
async def end_user_sessions(user_id: str, actor: ActorDep, database: DatabaseDep) -> Response:
    """Sign a user out everywhere."""
    async with database.transaction() as session:
        await auth_actions.revoke_sessions(session, actor=actor, user_id=user_id)
    return Response(status_code=204)


@router.delete("/users/{user_id}/sessions/{session_id}", status_code=204)
async def end_user_session(
    user_id: str, session_id: str, actor: ActorDep, database: DatabaseDep
) -> Response:
    async with database.transaction() as session:
        await auth_actions.revoke_sessions(
            session, actor=actor, user_id=user_id, session_id=session_id
        )
    return Response(status_code=204)
