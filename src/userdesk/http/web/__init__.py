"""The admin console: server-rendered pages enhanced with htmx (see render.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from userdesk.http.web import (
    account_pages,
    audit_pages,
    auth_pages,
    invitations_pages,
    mail_pages,
    roles_pages,
    settings_pages,
    users_pages,
    webhooks_pages,
)

log = logging.getLogger("userdesk.console")

STATIC = Path(__file__).parent / "static"
# htmx comes from the npm registry (`npm ci --prefix src/userdesk/http/web`, in the README's
# set-up command), pinned with its integrity hash in package-lock.json.
HTMX = Path(__file__).parent / "node_modules" / "htmx.org" / "dist"


def install(app: FastAPI) -> None:
    # invitations_pages before users_pages: POST /users/new/check is no user's action.
    for module in (
        auth_pages,
        invitations_pages,
        users_pages,
        mail_pages,
        account_pages,
        audit_pages,
        roles_pages,
        settings_pages,
        webhooks_pages,
    ):
        app.include_router(module.router)
    if not (HTMX / "htmx.min.js").is_file():
        log.warning(
            "htmx is not installed (%s is missing): console pages work as plain pages, without "
            "live search or panels; run `npm ci --prefix src/userdesk/http/web`",
            HTMX / "htmx.min.js",
        )
    app.mount("/static/htmx", StaticFiles(directory=HTMX, check_dir=False), name="htmx")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
