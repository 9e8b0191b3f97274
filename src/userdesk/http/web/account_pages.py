"""My account: one's own profile and sessions, two-factor authentication and personal access
tokens. Every change is the action behind the API's /api/v1/me routes; a form that fails
comes back with the reason beside its field (422), and htmx swaps just that form.

The two-factor pages stay open to a user whose role requires 2FA before anything else
(render.current_viewer sends them here), so enrolling needs no permission.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from userdesk.actions import auth as auth_actions
from userdesk.actions import tokens as token_actions
from userdesk.actions import two_factor as two_factor_actions
from userdesk.actions import users as user_actions
from userdesk.actions.abilities import may_edit_own_profile
from userdesk.actions.inputs import (
    CurrentPassword,
    PasswordAndCode,
    TokenCreate,
    TwoFactorCode,
    UserUpdate,
    known_timezones,
)
from userdesk.errors import InvalidInput, WrongPassword
from userdesk.http.deps import SESSION_COOKIE
from userdesk.http.web.render import (
    TWO_FACTOR_PAGE,
    ConsoleRoute,
    FormText,
    Viewer,
    ViewerDep,
    count_wrong_password,
    field_errors,
    fragments,
    is_htmx,
    page,
    read_shown,
    redirect,
    render,
    shown_json,
    toast,
)
from userdesk.models import ApiToken
from userdesk.queries import sessions as session_queries
from userdesk.queries import tokens as token_queries
from userdesk.queries import users as user_queries
from userdesk.security.permissions import PERMISSION_DESCRIPTIONS, Permission
from userdesk.security.randomness import token_digest
from userdesk.views import SessionView, TwoFactorSetupView

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

ACCOUNT_PAGE = "/account"
TOKENS_PAGE = "/account/tokens"
# The profile form's fields; an optional one left empty is cleared (the name is required).
PROFILE_FIELDS = ("name", "nickname", "status_message", "timezone", "bio")
REQUIRED_PROFILE_FIELDS = frozenset({"name"})
# A session's device in words, from its user agent; the first marker found names it.
BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
SYSTEMS = (
    ("Windows", "Windows"),
    ("iPhone", "iOS"),
    ("iPad", "iOS"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def _own_id(viewer: Viewer) -> str:
    assert viewer.actor.public_id is not None  # a console viewer is always a user
    return viewer.actor.public_id


async def _form_errors(request: Request, exc: InvalidInput | ValidationError) -> dict[str, str]:
    """A refused form's reasons by field; a wrong current password counts as a failed
    sign-in, as everywhere else."""
    if isinstance(exc, WrongPassword):
        await count_wrong_password(request, exc)
    if isinstance(exc, ValidationError):
        exc = InvalidInput.from_pydantic(exc.errors(), drop_location=False)
    return field_errors(exc)


# Profile and sessions


def device_of(user_agent: str | None) -> str:
    """ "Firefox on Windows" and the like; a program's own name (curl/8.5) as it gives it."""
    if not user_agent:
        return "Unknown device"
    browser = next((name for marker, name in BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or user_agent.split(" ", 1)[0][:60]


async def _account_values(request: Request, viewer: Viewer) -> dict[str, Any]:
    async with request.app.state.database.reader() as session:
        user = await user_queries.get_user(session, viewer=viewer.actor, user_id=_own_id(viewer))
        rows = await session_queries.list_sessions(
            session, viewer=viewer.actor, user_id=_own_id(viewer)
        )
        two_factor = await two_factor_actions.two_factor_status(session, actor=viewer.actor)
    secret = request.cookies.get(SESSION_COOKIE)
    digest = token_digest(secret) if secret else None
    return {
        "viewer": viewer,
        "user": user,
        "two_factor": two_factor,
        "sessions": [
            (SessionView.of(row, current_digest=digest), device_of(row.user_agent)) for row in rows
        ],
        "may_edit": may_edit_own_profile(viewer.actor),
    }


def _profile_form_values(user: Any) -> dict[str, str]:
    return {field: getattr(user, field) or "" for field in PROFILE_FIELDS}


async def _account_page(
    request: Request,
    viewer: Viewer,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    saved: bool = False,
) -> HTMLResponse:
    values = await _account_values(request, viewer)
    return page(
        "account.html",
        status=status,
        section="account",
        tab="profile",
        form=form or _profile_form_values(values["user"]),
        errors=errors or {},
        saved=saved,
        timezones=sorted(known_timezones()),
        **values,
    )


@router.get(ACCOUNT_PAGE, response_class=HTMLResponse)
async def account_page(request: Request, viewer: ViewerDep) -> Response:
    return await _account_page(request, viewer)


@router.post(ACCOUNT_PAGE, response_class=HTMLResponse)
async def save_profile(
    request: Request,
    viewer: ViewerDep,
    name: FormText = "",
    nickname: FormText = "",
    status_message: FormText = "",
    timezone: FormText = "",
    bio: FormText = "",
) -> Response:
    """The same change as PATCH /api/v1/users/{own id} with the profile fields."""
    form = {
        "name": name,
        "nickname": nickname,
        "status_message": status_message,
        "timezone": timezone,
        "bio": bio,
    }
    # Only what was typed over what the form showed, so a change made meanwhile elsewhere
    # to a field left alone stays.
    raw = await request.form()
    shown = (read_shown(raw) or {}).get("values") or {}
    changes = {
        field: value if value.strip() or field in REQUIRED_PROFILE_FIELDS else None
        for field, value in form.items()
        if not (isinstance(shown.get(field), str) and shown[field].strip() == value.strip())
    }
    try:
        data = UserUpdate.model_validate(changes)
        async with request.app.state.database.transaction() as session:
            await user_actions.update_user(
                session, actor=viewer.actor, user_id=_own_id(viewer), data=data
            )
    except (InvalidInput, ValidationError) as exc:
        errors = await _form_errors(request, exc)
        if not is_htmx(request):
            return await _account_page(request, viewer, status=422, form=form, errors=errors)
        return page(
            "_profile_form.html",
            status=422,
            viewer=viewer,
            form=form,
            shown=shown_json({"values": shown or form}),
            errors=errors,
            saved=False,
            timezones=sorted(known_timezones()),
        )
    if not is_htmx(request):
        return await _account_page(request, viewer, saved=True)
    values = await _account_values(request, viewer)
    return fragments(
        render(
            "_profile_form.html",
            form=_profile_form_values(values["user"]),
            errors={},
            saved=True,
            timezones=sorted(known_timezones()),
            **values,
        ),
        render("_profile_summary.html", oob=True, **values),
        toast("Your profile was saved."),
    )


@router.post(ACCOUNT_PAGE + "/sessions/{session_id}/sign-out", response_class=HTMLResponse)
async def end_session(request: Request, session_id: str, viewer: ViewerDep) -> Response:
    """The same as DELETE /api/v1/me/sessions/{id}: that browser is signed out."""
    async with request.app.state.database.transaction() as session:
        await auth_actions.revoke_sessions(
            session, actor=viewer.actor, user_id=_own_id(viewer), session_id=session_id
        )
    if not is_htmx(request):
        return redirect(request, ACCOUNT_PAGE)
    values = await _account_values(request, viewer)
    return fragments(
        render("_account_sessions.html", **values), toast("That session was signed out.")
    )


# Two-factor authentication


async def _two_factor_page(
    request: Request,
    viewer: Viewer,
    *,
    step: str = "status",
    status: int = 200,
    errors: dict[str, str] | None = None,
    failed_form: str | None = None,
    setup: TwoFactorSetupView | None = None,
    codes: list[str] | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    """The page, or for htmx the part that changed: the refused form alone (its errors
    beside its fields), else the whole step."""
    async with request.app.state.database.reader() as session:
        state = await two_factor_actions.two_factor_status(session, actor=viewer.actor)
    values: dict[str, Any] = {
        "viewer": viewer,
        "state": state,
        "step": step,
        "errors": errors or {},
        "setup": setup,
        "codes": codes or [],
        # After enrolling because a role requires it, on to what the user came for.
        "continue_to": "/" if viewer.actor.must_enrol_two_factor else TWO_FACTOR_PAGE,
    }
    if is_htmx(request):
        if failed_form is not None:
            return page("_two_factor_form.html", status=status, form=failed_form, **values)
        parts = [render("_two_factor_step.html", **values)]
        if notice:
            parts.append(toast(notice))
        return fragments(
            *parts,
            status=status,
            headers={"HX-Retarget": "#two-factor-step", "HX-Reswap": "innerHTML"},
        )
    return page(
        "two_factor.html",
        status=status,
        section="account",
        tab="two-factor",
        notice=notice,
        **values,
    )


@router.get(TWO_FACTOR_PAGE, response_class=HTMLResponse)
async def two_factor_page(request: Request, viewer: ViewerDep) -> Response:
    return await _two_factor_page(request, viewer)


@router.post(TWO_FACTOR_PAGE + "/setup", response_class=HTMLResponse)
async def start_enrolment(request: Request, viewer: ViewerDep, password: FormText = "") -> Response:
    """POST /api/v1/me/two-factor/setup: a new key, shown once as a QR code and as text."""
    try:
        data = CurrentPassword(password=password)
        async with request.app.state.database.transaction() as session:
            enrolment = await two_factor_actions.start_enrolment(
                session, actor=viewer.actor, data=data
            )
    except (InvalidInput, ValidationError) as exc:
        errors = await _form_errors(request, exc)
        return await _two_factor_page(
            request, viewer, status=422, errors=errors, failed_form="setup"
        )
    return await _two_factor_page(
        request, viewer, step="enrol", setup=TwoFactorSetupView.of(enrolment.secret, enrolment.uri)
    )


@router.post(TWO_FACTOR_PAGE + "/confirm", response_class=HTMLResponse)
async def confirm_enrolment(request: Request, viewer: ViewerDep, code: FormText = "") -> Response:
    """POST /api/v1/me/two-factor/confirm: 2FA is on, and the recovery codes shown once."""
    try:
        data = TwoFactorCode(code=code)
        async with request.app.state.database.transaction() as session:
            codes = await two_factor_actions.confirm_enrolment(
                session, actor=viewer.actor, data=data
            )
    except (InvalidInput, ValidationError) as exc:
        errors = await _form_errors(request, exc)
        # The key is shown only once; without htmx the page asks for a code of the key the
        # app already holds (or to start again).
        return await _two_factor_page(
            request, viewer, step="enrol", status=422, errors=errors, failed_form="confirm"
        )
    return await _two_factor_page(
        request,
        viewer,
        step="codes",
        codes=codes,
        notice="Two-factor authentication is on.",
    )


@router.post(TWO_FACTOR_PAGE + "/recovery-codes", response_class=HTMLResponse)
async def regenerate_recovery_codes(
    request: Request, viewer: ViewerDep, password: FormText = "", code: FormText = ""
) -> Response:
    """POST /api/v1/me/two-factor/recovery-codes: ten new codes; the earlier ones stop."""
    try:
        data = PasswordAndCode(password=password, code=code)
        async with request.app.state.database.transaction() as session:
            codes = await two_factor_actions.regenerate_recovery_codes(
                session, actor=viewer.actor, data=data
            )
    except (InvalidInput, ValidationError) as exc:
        errors = await _form_errors(request, exc)
        return await _two_factor_page(
            request, viewer, status=422, errors=errors, failed_form="regenerate"
        )
    return await _two_factor_page(
        request,
        viewer,
        step="codes",
        codes=codes,
        notice="New recovery codes were made; the earlier ones no longer work.",
    )


@router.post(TWO_FACTOR_PAGE + "/disable", response_class=HTMLResponse)
async def disable_two_factor(
    request: Request, viewer: ViewerDep, password: FormText = "", code: FormText = ""
) -> Response:
    """POST /api/v1/me/two-factor/disable (refused while a role requires 2FA)."""
    try:
        data = PasswordAndCode(password=password, code=code)
        async with request.app.state.database.transaction() as session:
            await two_factor_actions.disable_two_factor(session, actor=viewer.actor, data=data)
    except (InvalidInput, ValidationError) as exc:
        errors = await _form_errors(request, exc)
        return await _two_factor_page(
            request, viewer, status=422, errors=errors, failed_form="disable"
        )
    return await _two_factor_page(request, viewer, notice="Two-factor authentication is off.")


# Personal access tokens


def _token_state(token: ApiToken, now: datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


async def _tokens_values(request: Request, viewer: Viewer) -> dict[str, Any]:
    database = request.app.state.database
    async with database.reader() as session:
        owner = await token_queries.token_owner(
            session, viewer=viewer.actor, user_id=_own_id(viewer)
        )
        rows = await token_queries.list_tokens(session, viewer=viewer.actor, user=owner)
    now = database.services.clock.now()
    grantable = sorted(viewer.actor.permissions)
    return {
        "viewer": viewer,
        "tokens": [(token, _token_state(token, now)) for token in reversed(rows)],
        "grantable": [(p, PERMISSION_DESCRIPTIONS[Permission(p)]) for p in grantable],
    }


async def _tokens_page(
    request: Request,
    viewer: Viewer,
    *,
    status: int = 200,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    created: tuple[ApiToken, str] | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    values = {
        **(await _tokens_values(request, viewer)),
        "form": form or {"name": "", "expires_in_days": "", "scope": "all", "permissions": []},
        "errors": errors or {},
        "created": created,
    }
    if is_htmx(request):
        parts = [render("_tokens.html", **values)]
        if notice:
            parts.append(toast(notice))
        return fragments(*parts, status=status)
    return page("tokens.html", status=status, section="account", tab="tokens", **values)


@router.get(TOKENS_PAGE, response_class=HTMLResponse)
async def tokens_page(request: Request, viewer: ViewerDep) -> Response:
    return await _tokens_page(request, viewer)


@router.post(TOKENS_PAGE, response_class=HTMLResponse)
async def create_token(
    request: Request,
    viewer: ViewerDep,
    name: FormText = "",
    expires_in_days: FormText = "",
    scope: FormText = "all",
    permissions: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """POST /api/v1/me/tokens: the secret is in this answer only."""
    form = {
        "name": name,
        "expires_in_days": expires_in_days,
        "scope": scope,
        "permissions": permissions or [],
    }
    try:
        data = TokenCreate.model_validate(
            {
                "name": name,
                "expires_in_days": expires_in_days.strip() or None,
                "permissions": (permissions or []) if scope == "some" else None,
            }
        )
        async with request.app.state.database.transaction() as session:
            created = await token_actions.mint_token(
                session, actor=viewer.actor, user_id=_own_id(viewer), data=data
            )
    except (InvalidInput, ValidationError) as exc:
        errors = await _form_errors(request, exc)
        return await _tokens_page(request, viewer, status=422, form=form, errors=errors)
    return await _tokens_page(
        request, viewer, created=created, notice=f"The token “{created[0].name}” was created."
    )


@router.post(TOKENS_PAGE + "/{token_id}/revoke", response_class=HTMLResponse)
async def revoke_token(request: Request, token_id: str, viewer: ViewerDep) -> Response:
    """DELETE /api/v1/me/tokens/{id}: the token stops working at once."""
    async with request.app.state.database.transaction() as session:
        token = await token_actions.revoke_token(
            session, actor=viewer.actor, token_id=token_id, user_id=_own_id(viewer)
        )
        name = token.name
    if not is_htmx(request):
        return redirect(request, TOKENS_PAGE)
    return await _tokens_page(request, viewer, notice=f"The token “{name}” was revoked.")
