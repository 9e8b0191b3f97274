"""The Mail page: the outbox as admins read it (the built-in mail catcher while no SMTP server
is configured, the delivery status of each email once one is), one email at a time in the
side panel, and "Retry" for a failed or captured one.

Emails hold one-time links and passwords, so the page is for those who may manage settings,
as GET /api/v1/mail. An email's text is shown escaped, its http(s) links made clickable;
its HTML is never put into the console page: it is served on its own URL under a CSP with
`sandbox` and no scripts, and shown in a sandboxed frame.

The URL carries the view (the page's cursor, the open email, text or HTML), so a view can be
bookmarked and reloaded; htmx (`HX-Target: mail-view`) gets the list and the panel only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from userdesk.actions.outbox import RETRIABLE, email_warning, retry_email
from userdesk.db import Database
from userdesk.http.web.render import (
    CONSOLE_CSP,
    MAIL_WARNING,
    SECURITY_HEADERS,
    ConsoleRoute,
    Viewer,
    ViewerDep,
    fragments,
    is_htmx,
    page,
    redirect,
    render,
    toast,
)
from userdesk.mail.worker import CaughtEmail, read_row
from userdesk.models import Workspace
from userdesk.queries import mail as mail_queries
from userdesk.queries.workspace import get_workspace

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE = 25
# The Mail page frames an email's HTML from our own origin, and nothing else.
MAIL_PAGE_CSP = f"{CONSOLE_CSP}; frame-src 'self'"
# An email's HTML, alone on its URL: no script at all, an opaque origin even when opened
# outside the frame, its own inline styles and pictures, framed by the Mail page only.
EMAIL_HTML_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; "
        "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
    ),
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
}
# Only http(s) links become links; anything else (javascript:, data:) stays text.
LINK = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
# Punctuation that ends a sentence after a link rather than belonging to it.
AFTER_LINK = ".,;:!?)]}"
BADGE = {"sent": "active", "queued": "pending", "failed": "deactivated"}


def linkify(text: str) -> Markup:
    """The text escaped, with its http(s) URLs as links (each escaped too)."""
    parts: list[Markup] = []
    position = 0
    for found in LINK.finditer(text):
        url = found.group().rstrip(AFTER_LINK)
        if not LINK.fullmatch(url):
            continue
        parts.append(escape(text[position : found.start()]))
        parts.append(
            Markup('<a href="{0}" target="_blank" rel="noopener noreferrer">{0}</a>').format(url)
        )
        position = found.start() + len(url)
    parts.append(escape(text[position:]))
    return Markup("").join(parts)


@dataclass(frozen=True)
class View:
    """What the Mail page shows, as its URL says."""

    cursor: str = ""
    open: int | None = None
    html: bool = False

    @classmethod
    def parse(cls, params: dict[str, str]) -> View:
        opened = params.get("open", "")
        valid_id = opened.isascii() and opened.isdigit() and len(opened) < 20
        return cls(
            cursor=params.get("cursor", "")[:200],
            open=int(opened) if valid_id else None,
            html=params.get("as") == "html",
        )

    def url(self, **changes: Any) -> str:
        view = replace(self, **changes)
        params = {
            "cursor": view.cursor,
            "open": "" if view.open is None else str(view.open),
            "as": "html" if view.html and view.open is not None else "",
        }
        query = urlencode({k: v for k, v in params.items() if v})
        return "/mail" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class Opened:
    email: CaughtEmail
    body: Markup
    can_retry: bool


async def _values(database: Database, viewer: Viewer, view: View) -> dict[str, Any]:
    async with database.reader() as session:
        listing = await mail_queries.list_mail(
            session, viewer=viewer.actor, limit=PAGE_SIZE, cursor=view.cursor or None
        )
        workspace: Workspace = await get_workspace(session)
        row = None
        if view.open is not None:
            row = await mail_queries.get_mail(session, viewer=viewer.actor, email_id=view.open)
    opened = None
    if row is not None:
        email = read_row(row, workspace, database)
        opened = Opened(email, linkify(email.text), row.status in RETRIABLE)
    return {
        "view": view,
        "emails": [read_row(item, workspace, database) for item in listing.items],
        "next_cursor": listing.next_cursor,
        "opened": opened,
        "badge": BADGE,
    }


async def _mail_page(request: Request, viewer: Viewer, view: View) -> Response:
    values = await _values(request.app.state.database, viewer, view)
    headers = {"Content-Security-Policy": MAIL_PAGE_CSP}
    if (
        is_htmx(request)
        and request.headers.get("hx-target") == "mail-view"
        and not request.headers.get("hx-history-restore-request")
    ):
        return page("_mail_view.html", headers=headers, viewer=viewer, **values)
    return page(
        "mail.html",
        headers=headers,
        viewer=viewer,
        section="mail",
        banner_mail=True,
        **values,
    )


@router.get("/mail", response_class=HTMLResponse)
async def mail_page(request: Request, viewer: ViewerDep) -> Response:
    return await _mail_page(request, viewer, View.parse(dict(request.query_params)))


@router.get("/mail/{email_id}", response_class=HTMLResponse)
async def mail_message(request: Request, email_id: int, viewer: ViewerDep) -> Response:
    return await _mail_page(request, viewer, View(open=email_id))


@router.get("/mail/{email_id}/html", response_class=HTMLResponse)
async def mail_html(request: Request, email_id: int, viewer: ViewerDep) -> Response:
    """The email's HTML for the Mail page's sandboxed frame (see EMAIL_HTML_HEADERS)."""
    database: Database = request.app.state.database
    async with database.reader() as session:
        row = await mail_queries.get_mail(session, viewer=viewer.actor, email_id=email_id)
        workspace = await get_workspace(session)
    email = read_row(row, workspace, database)
    return HTMLResponse(email.html, headers=EMAIL_HTML_HEADERS)


@router.post("/mail/{email_id}/retry", response_class=HTMLResponse)
async def retry(request: Request, email_id: int, viewer: ViewerDep) -> Response:
    database: Database = request.app.state.database
    async with database.transaction() as session:
        row = await retry_email(session, actor=viewer.actor, email_id=email_id)
        to = row.payload.get("to", "")
        warning = email_warning(await get_workspace(session))
    view = _view_of_caller(request, email_id)
    if not is_htmx(request):
        return redirect(request, view.url())
    values = await _values(database, viewer, view)
    parts = [render("_mail_view.html", viewer=viewer, **values)]
    parts.append(toast(f"The email to {to} is queued again."))
    if warning:
        parts.append(toast(MAIL_WARNING, kind="warning"))
    return fragments(*parts)


def _view_of_caller(request: Request, email_id: int) -> View:
    """The view an action was taken from (htmx's current URL), with the email open."""
    parts = urlsplit(request.headers.get("hx-current-url") or "")
    view = View.parse(dict(parse_qsl(parts.query))) if parts.path == "/mail" else View()
    return replace(view, open=email_id)
