"""A Rocket.Chat-compatible users API, so scripts and bots written for Rocket.Chat's REST API
manage userdesk users unchanged.

Layout: Rocket.Chat's methods live at /api/v1/<method> beside userdesk's native routes. Its
methods have a dot (users.create, roles.list) or are named login, logout and the invite
methods, which no native route uses. The one path both APIs have, GET /api/v1/me, answers
in Rocket.Chat's shape when the request carries X-Auth-Token, and in the native one
otherwise. Errors of Rocket.Chat's requests answer in its format.
"""

from __future__ import annotations

from fastapi import FastAPI

from userdesk.http import problems
from userdesk.http.rocketchat import auth, invites, roles, users
from userdesk.http.rocketchat.protocol import RocketChatErrors, is_rocketchat_request


def install(app: FastAPI) -> None:
    """Before the native routers: /api/v1/me with X-Auth-Token must reach Rocket.Chat's."""
    problems.register_format(app, is_rocketchat_request, RocketChatErrors())
    for router in (
        auth.me_router,
        auth.router,
        users.router,
        users.avatar_router,
        roles.router,
        invites.router,
    ):
        app.include_router(router)
