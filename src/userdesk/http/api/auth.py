"""/api/v1/auth/login, /api/v1/auth/logout and /api/v1/me."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from userdesk.actions import auth as auth_actions
from userdesk.actions.inputs import SignIn
from userdesk.errors import Unauthenticated
from userdesk.http.deps import SESSION_COOKIE, ActorDep, DatabaseDep
from userdesk.http.problems import problem_responses
from userdesk.queries import users as user_queries
from userdesk.views import SignedInView, UserView

router = APIRouter(prefix="/api/v1", tags=["sign-in"], responses=problem_responses())


@router.post("/auth/login", response_model=SignedInView)
async def login(
    body: SignIn, request: Request, response: Response, database: DatabaseDep
) -> SignedInView:
    """Sign in with a username or email and the password. Sets the session cookie
    (HttpOnly, SameSite=Lax, Secure unless USERDESK_COOKIE_SECURE is false)."""
    async with database.transaction() as session:
        result = await auth_actions.sign_in(
            session,
            data=body,
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
        view = SignedInView(user=UserView.of(result.user)) if result.user else None
    if view is None or result.secret is None:
        raise Unauthenticated(result.refusal or auth_actions.FAILED)
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
