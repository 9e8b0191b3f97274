"""The console's plumbing: one Jinja2 environment, the headers every page carries, the
signed-in viewer with its CSRF token, and the one place domain errors become HTML.

Pages are rendered on the server and enhanced with htmx: every link and form works as a
plain request, and an htmx request (header `HX-Request`) gets just the fragment it swaps.
Scripts and styles come only from our own origin (CSP `script-src 'self'`): no inline
script, no inline style, no eval.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from fastapi import Depends, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import select

from userdesk import __version__
from userdesk.actions.auth import note_session_use
from userdesk.actions.context import Actor
from userdesk.actions.outbox import mail_configured
from userdesk.actions.reauth import note_wrong_password
from userdesk.actions.tokens import LAST_USED_RESOLUTION
from userdesk.db import Database
from userdesk.errors import (
    DomainError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    WrongPassword,
)
from userdesk.http.deps import SESSION_COOKIE
from userdesk.models import User
from userdesk.queries.auth import actor_for_session
from userdesk.queries.workspace import get_workspace
from userdesk.security.permissions import Permission
from userdesk.security.sealing import SealingError

log = logging.getLogger("userdesk.console")

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONSOLE_CSP,
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
# Where a signed-in user must go before anything else, and the pages they may still use.
PASSWORD_CHANGE_PAGE = "/account/password"
TWO_FACTOR_PAGE = "/account/two-factor"
ALWAYS_ALLOWED = ("/logout", "/static/")

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _format_time(value: datetime | None, zone: str | None = None) -> str:
    if value is None:
        return "never"
    if zone:
        with contextlib.suppress(KeyError, ValueError):
            value = value.astimezone(ZoneInfo(zone))
    return value.strftime("%Y-%m-%d %H:%M %Z").strip()


def _initials(name: str) -> str:
    parts = [p for p in name.replace("_", " ").replace(".", " ").split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"


templates.filters["time"] = _format_time
templates.filters["initials"] = _initials
templates.globals["version"] = __version__
templates.globals["Permission"] = Permission


SHOWN_FIELD = "shown"


def shown_json(values: dict[str, Any]) -> str:
    """What a form showed, carried in the form (hidden field `shown`): a Save then changes
    only the fields whose typed value differs from what was shown, so a value someone else
    changed meanwhile in a field left alone is not written back."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def read_shown(form: Any) -> dict[str, Any] | None:
    """The `shown` values a form came with, or None (a client that sent none, or junk): then
    the stored values are the comparison."""
    raw = form.get(SHOWN_FIELD)
    if not isinstance(raw, str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


templates.globals["shown_json"] = shown_json


def csrf_token_for(session_secret: str) -> str:
    """The token every changing console request carries: derived from the session cookie's
    secret, which another site can neither read (HttpOnly) nor guess, so it needs no storage."""
    digest = hashlib.sha256(b"userdesk console csrf\x00" + session_secret.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Viewer:
    """The signed-in user looking at a console page."""

    actor: Actor
    user: User
    csrf: str
    workspace_name: str
    mail_configured: bool

    def can(self, permission: Permission) -> bool:
        return self.actor.has(permission)


FormText = Annotated[str, Form()]

# The console's words for an answer whose email stays in the mail catcher.
MAIL_WARNING = (
    "Email is not configured: the message is kept in the Mail page (the built-in mail "
    "catcher) and nobody receives it."
)


class SignInNeeded(Exception):
    """No session, or it ended: the page sends the browser to the sign-in page."""


class GoElsewhere(Exception):
    """The viewer must first do something on another page (change the password, enrol 2FA)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def client_facts(request: Request) -> dict[str, str | None]:
    return {
        "ip": request.client.host if request.client else None,
        "user_agent": request.headers.get("user-agent"),
    }


def same_origin(request: Request) -> bool:
    """Whether a changing request comes from our own pages. Browsers send Origin on every
    POST; a request without one is not a browser's cross-site form."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


async def _check_csrf(request: Request, expected: str) -> None:
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not same_origin(request) or sent is None or not hmac.compare_digest(sent, expected):
        raise PermissionDenied(
            "this form is out of date or came from another site; reload the page and try again"
        )


async def current_viewer(request: Request) -> Viewer:
    """The console's dependency: the signed-in viewer, or a trip to the sign-in page."""
    database: Database = request.app.state.database
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise SignInNeeded
    async with database.reader() as session:
        found = await actor_for_session(session, secret, **client_facts(request))
        if found is None:
            raise SignInNeeded
        actor, login_session = found
        user = await session.scalar(select(User).where(User.id == actor.user_id))
        assert user is not None
        workspace = await get_workspace(session)
    csrf = csrf_token_for(secret)
    await _check_csrf(request, csrf)
    now = database.services.clock.now()
    if now - login_session.last_seen_at >= LAST_USED_RESOLUTION:
        async with database.transaction() as session:
            await note_session_use(session, session_id=login_session.id, at=now)
    path = request.url.path
    if not path.startswith(ALWAYS_ALLOWED):
        if actor.must_change_password and not path.startswith(PASSWORD_CHANGE_PAGE):
            raise GoElsewhere(PASSWORD_CHANGE_PAGE)
        if (
            actor.must_enrol_two_factor
            and not actor.must_change_password
            and not path.startswith(TWO_FACTOR_PAGE)
        ):
            raise GoElsewhere(TWO_FACTOR_PAGE)
    return Viewer(
        actor=actor,
        user=user,
        csrf=csrf,
        workspace_name=workspace.name,
        mail_configured=mail_configured(workspace),
    )


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def render(template: str, /, **values: Any) -> str:
    return templates.get_template(template).render(**values)


def page(
    template: str,
    /,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """A console page or fragment, with the console's security headers."""
    return HTMLResponse(
        render(template, **values),
        status_code=status,
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def redirect(request: Request, location: str) -> Response:
    """Go to `location`: a 303 for a plain request, `HX-Redirect` for htmx (which would
    otherwise swap the next page into a fragment)."""
    if is_htmx(request):
        # Encoded as a Location header would be: htmx assigns it to location.href as is.
        encoded = quote(location, safe=":/%#?=@[]!$&'()*+,;")
        return Response(status_code=204, headers={"HX-Redirect": encoded})
    return RedirectResponse(location, status_code=303)


def safe_next(value: str | None, default: str = "/users") -> str:
    """Only a path on this site: never `//evil.example`, `https://...`, nor anything a
    browser would turn into one (it drops tabs and line breaks, and reads `\\` as `/`)."""
    if not value or not value.startswith("/"):
        return default
    if "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return default
    parts = urlsplit(value)
    if value.startswith("//") or parts.scheme or parts.netloc:
        return default
    return value


def sign_in_location(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET" or is_htmx(request):
        target = request.headers.get("hx-current-url") or "/users"
        target = urlsplit(target).path + (
            f"?{urlsplit(target).query}" if urlsplit(target).query else ""
        )
    return f"/login?next={quote(safe_next(target), safe='')}"


async def count_wrong_password(request: Request, exc: WrongPassword) -> None:
    """A wrong current password counts as a failed sign-in, in its own transaction (the
    action's rolled back), as the API's handler does."""
    async with request.app.state.database.transaction() as session:
        await note_wrong_password(session, user_id=exc.user_id, **client_facts(request))


def field_errors(exc: InvalidInput) -> dict[str, str]:
    """The first message per field, for showing beside each field."""
    errors: dict[str, str] = {}
    for error in exc.errors:
        errors.setdefault(error.field, error.message)
    return errors


def fragments(
    *parts: str, status: int = 200, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """One htmx answer made of several rendered parts (the main swap first, then the
    out-of-band ones: a panel, a list, toasts)."""
    return page(
        "_fragments.html",
        status=status,
        headers=headers,
        parts=[Markup(part) for part in parts],
    )


def toast(message: str, *, kind: str = "success") -> Markup:
    """An out-of-band notice for the page's toast area, appended to any htmx answer."""
    return Markup(render("_toast.html", message=message, kind=kind, oob=True))


_ERROR_TITLES: list[tuple[type[DomainError], int, str]] = [
    (NotFound, 404, "Not found"),
    (PermissionDenied, 403, "Not allowed"),
    (Unauthenticated, 401, "Sign in needed"),
    (InvalidInput, 422, "Check the form"),
]


def error_response(request: Request, exc: DomainError) -> Response:
    """A domain error as the console shows it: a toast for htmx, else a page saying why."""
    status, title = next(
        ((s, t) for cls, s, t in _ERROR_TITLES if isinstance(exc, cls)), (409, "Not done")
    )
    message = exc.message
    if is_htmx(request):
        return page(
            "_toast.html",
            status=status,
            headers={"HX-Retarget": "#toasts", "HX-Reswap": "beforeend"},
            message=message,
            kind="error",
            oob=False,
        )
    return page("error.html", status=status, title=title, message=message)


def unexpected_response(request: Request) -> Response:
    """A bug of ours, as a page (or toast) with the console's headers; the details are in
    the server's log, not in the answer."""
    message = "Something went wrong on our side; it was logged. Try again, or reload the page."
    if is_htmx(request):
        return page(
            "_toast.html",
            status=500,
            headers={"HX-Retarget": "#toasts", "HX-Reswap": "beforeend"},
            message=message,
            kind="error",
            oob=False,
        )
    return page("error.html", status=500, title="Something went wrong", message=message)


Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class ConsoleRoute(APIRoute):
    """Every console route's errors, mapped to HTML in this one place."""

    def get_route_handler(self) -> Endpoint:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded:
                return redirect(request, sign_in_location(request))
            except GoElsewhere as exc:
                return redirect(request, exc.location)
            except WrongPassword as exc:
                await count_wrong_password(request, exc)
                return error_response(request, exc)
            except DomainError as exc:
                return error_response(request, exc)
            except (RequestValidationError, ValidationError) as exc:
                errors = exc.errors()
                return error_response(
                    request,
                    InvalidInput.from_pydantic(
                        errors, drop_location=isinstance(exc, RequestValidationError)
                    ),
                )
            except SealingError:
                raise  # the app's handler explains it to the operator (503)
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return unexpected_response(request)

        return handle
