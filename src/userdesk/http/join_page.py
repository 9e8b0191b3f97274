"""The pages emails link to: /join/{token} (an invitation or invite link), /reset-password
and /verify-email (their tokens in the URL's fragment).

Rendered on the server with everything escaped; its form posts to POST /api/v1/join/{token}
from a small inline script (allowed by a per-response nonce, nothing else is). A token that
cannot be used gets a page saying why, with the API's status (410, or 409 when a link's
workspace is full). The token is in the URL, so the page sends no Referer and is not cached.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from userdesk.actions.invitations import join_info
from userdesk.actions.passwords import policy_of
from userdesk.errors import InvitationInvalid, SeatLimitReached
from userdesk.http.deps import DatabaseDep
from userdesk.queries.workspace import get_workspace

router = APIRouter(include_in_schema=False)

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
)
CANNOT_JOIN = "This invitation cannot be used"
FULL = "The workspace is full"
FULL_DETAIL = (
    "There is no free seat for a new member right now. Ask an administrator of the workspace "
    "to make room, then open this link again."
)


def _page(
    status: int, nonce: str, *, template: str = "join.html", **values: object
) -> HTMLResponse:
    html = _templates.get_template(template).render(nonce=nonce, **values)
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Content-Security-Policy": (
                f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
            ),
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        },
    )


@router.get("/join/{token}", response_class=HTMLResponse)
async def join_page(token: str, database: DatabaseDep) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    async with database.reader() as session:
        workspace = await get_workspace(session)
        try:
            info = await join_info(session, token=token)
        except InvitationInvalid as exc:
            return _page(
                410, nonce, form=False, title=CANNOT_JOIN, detail=exc.message, workspace=None
            )
        except SeatLimitReached:
            return _page(
                409, nonce, form=False, title=FULL, detail=FULL_DETAIL, workspace=workspace.name
            )
        policy = await policy_of(session, workspace)
    invitation = info.invite.invitation
    return _page(
        200,
        nonce,
        form=True,
        workspace=workspace.name,
        email=invitation.email if invitation is not None else None,
        api_url=f"/api/v1/join/{quote(token, safe='')}",
        max_length=policy.max_length,
        rules=[rule.message for rule in policy.check("")],
    )


@router.get("/reset-password", response_class=HTMLResponse)
async def reset_password_page(database: DatabaseDep) -> HTMLResponse:
    """Where a password-reset email's link leads (the token is in the URL's fragment, which
    the page reads and posts to the API; the server never sees it in a URL)."""
    async with database.reader() as session:
        workspace = await get_workspace(session)
        policy = await policy_of(session, workspace)
    return _page(
        200,
        secrets.token_urlsafe(16),
        template="reset_password.html",
        workspace=workspace.name,
        max_length=policy.max_length,
        rules=[rule.message for rule in policy.check("")],
    )


@router.get("/verify-email", response_class=HTMLResponse)
async def verify_email_page(database: DatabaseDep) -> HTMLResponse:
    """Where a verification (or email change) link leads; the page posts the fragment's
    token to the API and shows the outcome."""
    async with database.reader() as session:
        workspace = await get_workspace(session)
    return _page(
        200, secrets.token_urlsafe(16), template="verify_email.html", workspace=workspace.name
    )
