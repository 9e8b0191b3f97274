"""Sign in (with the 2FA step), sign out, forgot password and the forced password change."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from userdesk.actions import auth as auth_actions
from userdesk.actions import recovery
from userdesk.actions.inputs import PasswordChange, PasswordForgot, SignIn, VerificationRequest
from userdesk.actions.passwords import policy_of
from userdesk.errors import (
    EmailUnverified,
    InvalidInput,
    PermissionDenied,
    TooManyAttempts,
    TwoFactorCodeRequired,
    WrongPassword,
)
from userdesk.http.api.recovery import RESET_REQUESTED, VERIFICATION_REQUESTED
from userdesk.http.deps import SESSION_COOKIE
from userdesk.http.web.render import (
    PASSWORD_CHANGE_PAGE,
    ConsoleRoute,
    FormText,
    Viewer,
    ViewerDep,
    client_facts,
    count_wrong_password,
    field_errors,
    is_htmx,
    page,
    redirect,
    safe_next,
    same_origin,
)
from userdesk.queries.workspace import get_workspace
from userdesk.security.permissions import Permission

# How long the emailed links work, as the pages say it.
RESET_MINUTES = int(recovery.RESET_LINK_LIFETIME.total_seconds() // 60)
VERIFY_HOURS = int(recovery.VERIFICATION_LINK_LIFETIME.total_seconds() // 3600)

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


async def _workspace_name(request: Request) -> str:
    async with request.app.state.database.reader() as session:
        return (await get_workspace(session)).name


def _login_page(
    request: Request,
    workspace_name: str,
    *,
    status: int = 200,
    next_url: str = "/",
    login: str = "",
    code_needed: bool = False,
    error: str | None = None,
    unverified: bool = False,
) -> HTMLResponse:
    values: dict[str, Any] = {"code_needed": code_needed, "error": error, "unverified": unverified}
    if is_htmx(request):
        return page("_login_feedback.html", status=status, **values)
    return page(
        "login.html",
        status=status,
        workspace_name=workspace_name,
        next=next_url,
        login=login,
        **values,
    )


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, viewer: ViewerDep) -> Response:
    """Admins land on the Users page, everyone else on their account."""
    return redirect(request, "/users" if viewer.can(Permission.USERS_READ) else "/account")


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> Response:
    return _login_page(request, await _workspace_name(request), next_url=safe_next(next, "/"))


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    login: FormText = "",
    password: FormText = "",
    code: FormText = "",
    next: FormText = "/",
) -> Response:
    """The same sign-in as POST /api/v1/auth/login. A right password of a user with 2FA
    answers with the code field; the password stays in the browser's form, never echoed."""
    database = request.app.state.database
    workspace_name = await _workspace_name(request)
    next_url = safe_next(next, "/")

    def again(
        error: str | None, *, status: int, code_needed: bool = False, unverified: bool = False
    ) -> HTMLResponse:
        return _login_page(
            request,
            workspace_name,
            status=status,
            next_url=next_url,
            login=login,
            code_needed=code_needed,
            error=error,
            unverified=unverified,
        )

    if not same_origin(request):
        return again("Sign in from this site's own page.", status=403)
    if not login.strip() or not password:
        return again("Enter your username or email and your password.", status=422)
    try:
        data = SignIn(login=login, password=password, code=code.strip() or None)
    except ValueError:
        return again("The username, email or code is too long.", status=422)
    facts = client_facts(request)
    async with database.reader() as session:  # the hash is compared outside any lock
        checked = await auth_actions.check_sign_in_password(session, data=data, ip=facts["ip"])
    async with database.transaction() as session:
        result = await auth_actions.sign_in(session, data=data, checked=checked, **facts)
    if result.user is None or result.secret is None:
        refusal = result.refusal
        if isinstance(refusal, TwoFactorCodeRequired):
            wrong_code = data.code is not None
            return again(
                "That code is not right, or was already used." if wrong_code else None,
                status=401 if wrong_code else 200,
                code_needed=True,
            )
        if isinstance(refusal, EmailUnverified):
            return again(
                "Verify your email address first: follow the link in the email we sent you.",
                status=401,
                unverified=True,
            )
        if isinstance(refusal, TooManyAttempts):
            return again(
                f"Too many failed sign-ins. Try again in {refusal.retry_after} seconds.",
                status=429,
            )
        message = refusal.message if refusal is not None else auth_actions.FAILED
        return again(message[:1].upper() + message[1:] + ".", status=401)
    if result.user.require_password_change:
        next_url = PASSWORD_CHANGE_PAGE
    answer = redirect(request, next_url)
    answer.set_cookie(
        SESSION_COOKIE,
        result.secret,
        httponly=True,
        secure=request.app.state.settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    return answer


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request, viewer: ViewerDep) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        async with request.app.state.database.transaction() as session:
            await auth_actions.sign_out(session, actor=viewer.actor, secret=secret)
    answer = redirect(request, "/login")
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer


@router.get("/forgot-password", response_class=HTMLResponse)
async def forgot_password_page(request: Request) -> Response:
    return page("forgot_password.html", link_minutes=RESET_MINUTES, sent=None, login="", error="")


@router.post("/forgot-password", response_class=HTMLResponse)
async def forgot_password(request: Request, login: FormText = "") -> Response:
    """The same request as POST /api/v1/auth/password/forgot, with the same answer whether
    or not the account exists."""
    if not same_origin(request):
        raise PermissionDenied("ask for a reset link from this site's own page")
    try:
        data = PasswordForgot(login=login)
    except ValueError:
        return page(
            "forgot_password.html",
            link_minutes=RESET_MINUTES,
            status=422,
            sent=None,
            login=login[:320],
            error="Enter your username or email address (at most 320 characters).",
        )
    async with request.app.state.database.transaction() as session:
        await recovery.request_password_reset(session, data=data, **client_facts(request))
    return page(
        "forgot_password.html",
        link_minutes=RESET_MINUTES,
        sent=RESET_REQUESTED.capitalize(),
        login="",
        error="",
    )


@router.get("/verify-email/request", response_class=HTMLResponse)
async def verification_request_page(request: Request) -> Response:
    return page("verify_request.html", link_hours=VERIFY_HOURS, sent=None, email="", error="")


@router.post("/verify-email/request", response_class=HTMLResponse)
async def request_verification(request: Request, email: FormText = "") -> Response:
    """The same request as POST /api/v1/auth/verify-email/request, with the same answer
    whatever the address."""
    if not same_origin(request):
        raise PermissionDenied("ask for a verification link from this site's own page")
    try:
        data = VerificationRequest(email=email)
    except ValidationError as exc:
        message = InvalidInput.from_pydantic(exc.errors(), drop_location=False).errors[0].message
        return page(
            "verify_request.html",
            link_hours=VERIFY_HOURS,
            status=422,
            sent=None,
            email=email[:320],
            error=message,
        )
    async with request.app.state.database.transaction() as session:
        await recovery.request_verification(session, data=data, **client_facts(request))
    return page(
        "verify_request.html",
        link_hours=VERIFY_HOURS,
        sent=VERIFICATION_REQUESTED.capitalize(),
        email="",
        error="",
    )


async def _password_form(
    request: Request,
    viewer: Viewer,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    done: str | None = None,
) -> HTMLResponse:
    async with request.app.state.database.reader() as session:
        policy = await policy_of(session)
    values: dict[str, Any] = {
        "viewer": viewer,
        "errors": errors or {},
        "done": done,
        "max_length": policy.max_length,
        "rules": policy.check("", username=viewer.user.username, email=viewer.user.email),
        "checked": False,
        "section": "account",
    }
    template = "_change_password_form.html" if is_htmx(request) else "change_password.html"
    return page(template, status=status, **values)


@router.get(PASSWORD_CHANGE_PAGE, response_class=HTMLResponse)
async def change_password_page(request: Request, viewer: ViewerDep) -> Response:
    return await _password_form(request, viewer)


@router.post(PASSWORD_CHANGE_PAGE + "/check", response_class=HTMLResponse)
async def check_new_password(
    request: Request, viewer: ViewerDep, new_password: FormText = ""
) -> Response:
    """Live feedback: each rule of the policy, met or not, for the password typed so far."""
    async with request.app.state.database.reader() as session:
        policy = await policy_of(session)
    rules = policy.check(
        new_password[:4096], username=viewer.user.username, email=viewer.user.email
    )
    return page("_policy_feedback.html", rules=rules, checked=bool(new_password))


@router.post(PASSWORD_CHANGE_PAGE, response_class=HTMLResponse)
async def change_password(
    request: Request,
    viewer: ViewerDep,
    current_password: FormText = "",
    new_password: FormText = "",
) -> Response:
    forced = viewer.actor.must_change_password
    try:
        data = PasswordChange(current_password=current_password, new_password=new_password)
        async with request.app.state.database.transaction() as session:
            await auth_actions.change_own_password(
                session,
                actor=viewer.actor,
                data=data,
                current_secret=request.cookies.get(SESSION_COOKIE),
            )
    except WrongPassword as exc:
        await count_wrong_password(request, exc)
        return await _password_form(request, viewer, status=422, errors=field_errors(exc))
    except InvalidInput as exc:
        return await _password_form(request, viewer, status=422, errors=field_errors(exc))
    except ValidationError as exc:
        invalid = InvalidInput.from_pydantic(exc.errors(), drop_location=False)
        return await _password_form(request, viewer, status=422, errors=field_errors(invalid))
    if forced:
        return redirect(request, "/")
    return await _password_form(
        request, viewer, done="Your password was changed; your other sessions were signed out."
    )
