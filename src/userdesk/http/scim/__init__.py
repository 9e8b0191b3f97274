"""SCIM 2.0 (RFC 7643, RFC 7644) at /scim/v2, for identity providers."""

from __future__ import annotations

from fastapi import FastAPI

from userdesk.http import problems
from userdesk.http.scim import discovery, groups, users
from userdesk.http.scim.protocol import PREFIX, ScimErrors


def install(app: FastAPI) -> None:
    problems.register_format(app, PREFIX, ScimErrors())
    app.include_router(discovery.router)
    app.include_router(users.router)
    app.include_router(groups.router)
