"""Request-scoped dependencies: the database and the authenticated actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from userdesk.actions.context import Actor
from userdesk.actions.tokens import LAST_USED_RESOLUTION, note_token_use
from userdesk.db import Database
from userdesk.errors import Unauthenticated
from userdesk.queries.auth import actor_for_token


def get_database(request: Request) -> Database:
    return request.app.state.database


DatabaseDep = Annotated[Database, Depends(get_database)]


async def current_actor(request: Request, database: DatabaseDep) -> Actor:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send a personal access token as 'Authorization: Bearer <token>'")
    async with database.reader() as session:
        found = await actor_for_token(
            session,
            token.strip(),
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
    if found is None:
        raise Unauthenticated(
            "the token is unknown, expired or revoked, or its user is deactivated"
        )
    actor, api_token = found
    now = database.services.clock.now()
    if api_token.last_used_at is None or now - api_token.last_used_at >= LAST_USED_RESOLUTION:
        async with database.transaction() as session:
            await note_token_use(session, token_id=api_token.id, at=now)
    return actor


ActorDep = Annotated[Actor, Depends(current_actor)]
