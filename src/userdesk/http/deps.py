"""Request-scoped dependencies: the database and the authenticated actor."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from userdesk.actions.auth import note_session_use
from userdesk.actions.context import Actor
from userdesk.actions.tokens import LAST_USED_RESOLUTION, note_token_use
from userdesk.db import Database
from userdesk.errors import PermissionDenied, Unauthenticated
from userdesk.queries.auth import actor_for_session, actor_for_token

SESSION_COOKIE = "userdesk_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_database(request: Request) -> Database:
    # async so FastAPI calls it on the event loop: a plain function is sent to the thread
    # pool, a round trip between threads on every request for an attribute read.
    return request.app.state.database


DatabaseDep = Annotated[Database, Depends(get_database)]


def _request_facts(request: Request) -> dict[str, str | None]:
    return {
        "ip": request.client.host if request.client else None,
        "user_agent": request.headers.get("user-agent"),
    }


def _refuse_cross_site(request: Request) -> None:
    """A cookie rides along on requests other sites make; a changing one must come from us.
    (SameSite=Lax keeps the cookie off most of them already; this closes the rest.)"""
    origin = request.headers.get("origin")
    if request.method in SAFE_METHODS or origin is None:
        return
    if urlsplit(origin).netloc != request.headers.get("host"):
        raise PermissionDenied("a cross-site request cannot use the session cookie")


async def actor_by_token(request: Request, database: Database, token: str) -> Actor | None:
    """The actor behind a personal access token, noting its use; None if it is no good."""
    async with database.reader() as session:
        found = await actor_for_token(session, token, **_request_facts(request))
    if found is None:
        return None
    actor, api_token = found
    now = database.services.clock.now()
    if api_token.last_used_at is None or now - api_token.last_used_at >= LAST_USED_RESOLUTION:
        async with database.transaction() as session:
            await note_token_use(session, token_id=api_token.id, at=now)
    return actor


async def actor_by_session(request: Request, database: Database, secret: str) -> Actor | None:
    """The actor behind a session secret, noting its use; None if the session has ended."""
    async with database.reader() as session:
        by_session = await actor_for_session(session, secret, **_request_facts(request))
    if by_session is None:
        return None
    actor, login_session = by_session
    now = database.services.clock.now()
    if now - login_session.last_seen_at >= LAST_USED_RESOLUTION:
        async with database.transaction() as session:
            await note_session_use(session, session_id=login_session.id, at=now)
    return actor


async def current_actor(request: Request, database: DatabaseDep) -> Actor:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if header:
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send a token as 'Authorization: Bearer <token>'")
        by_token = await actor_by_token(request, database, token.strip())
        if by_token is None:
            raise Unauthenticated(
                "the token is unknown, expired or revoked, or its user is deactivated"
            )
        return by_token
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise Unauthenticated("sign in, or send a token as 'Authorization: Bearer <token>'")
    _refuse_cross_site(request)
    by_session = await actor_by_session(request, database, secret)
    if by_session is None:
        raise Unauthenticated("the session has ended; sign in again")
    return by_session


ActorDep = Annotated[Actor, Depends(current_actor)]


async def optional_actor(request: Request, database: DatabaseDep) -> Actor | None:
    """The caller when they sent credentials (which must then be good), else None."""
    if not request.headers.get("authorization") and not request.cookies.get(SESSION_COOKIE):
        return None
    return await current_actor(request, database)


OptionalActorDep = Annotated[Actor | None, Depends(optional_actor)]
