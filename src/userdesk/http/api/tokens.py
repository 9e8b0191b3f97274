"""Personal access tokens: one's own, and a bot's (minted by whoever may manage it)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response

from userdesk.actions import tokens as token_actions
from userdesk.actions.context import Actor
from userdesk.actions.inputs import TokenCreate
from userdesk.db import Database
from userdesk.http.deps import ActorDep, DatabaseDep
from userdesk.http.problems import problem_responses
from userdesk.queries import tokens as token_queries
from userdesk.views import CreatedTokenView, TokenListView, TokenView

router = APIRouter(prefix="/api/v1", tags=["tokens"], responses=problem_responses())


def _own_id(actor: Actor) -> str:
    assert actor.public_id is not None  # HTTP actors are always users
    return actor.public_id


async def _list(database: Database, actor: Actor, user_id: str) -> TokenListView:
    async with database.reader() as session:
        user = await token_queries.token_owner(session, viewer=actor, user_id=user_id)
        rows = await token_queries.list_tokens(session, viewer=actor, user=user)
        return TokenListView(items=[TokenView.of(t) for t in rows])


async def _create(
    database: Database, actor: Actor, user_id: str, body: TokenCreate
) -> CreatedTokenView:
    expires = None
    if body.expires_in_days is not None:
        expires = database.services.clock.now() + timedelta(days=body.expires_in_days)
    async with database.transaction() as session:
        token, secret = await token_actions.create_token(
            session,
            actor=actor,
            user_id=user_id,
            name=body.name,
            expires_at=expires,
            permissions=body.permissions,
        )
        return CreatedTokenView(token=TokenView.of(token), secret=secret)


async def _revoke(database: Database, actor: Actor, user_id: str, token_id: str) -> Response:
    async with database.transaction() as session:
        await token_queries.token_owner(session, viewer=actor, user_id=user_id)
        await token_actions.revoke_token(session, actor=actor, token_id=token_id, user_id=user_id)
    return Response(status_code=204)


@router.get("/me/tokens", response_model=TokenListView)
async def my_tokens(actor: ActorDep, database: DatabaseDep) -> TokenListView:
    """One's tokens, revoked ones included (never their secrets)."""
    return await _list(database, actor, _own_id(actor))


@router.post("/me/tokens", response_model=CreatedTokenView, status_code=201)
async def mint_my_token(
    body: TokenCreate, actor: ActorDep, database: DatabaseDep
) -> CreatedTokenView:
    """Mint a token: its secret is in this answer only. `permissions`, a subset of one's
    own, restricts it; `expires_in_days` ends it."""
    return await _create(database, actor, _own_id(actor), body)


@router.delete("/me/tokens/{token_id}", status_code=204)
async def revoke_my_token(token_id: str, actor: ActorDep, database: DatabaseDep) -> Response:
    return await _revoke(database, actor, _own_id(actor), token_id)


@router.get("/users/{user_id}/tokens", response_model=TokenListView)
async def user_tokens(user_id: str, actor: ActorDep, database: DatabaseDep) -> TokenListView:
    """A user's tokens (users.reset_credentials, or oneself)."""
    return await _list(database, actor, user_id)


@router.post("/users/{user_id}/tokens", response_model=CreatedTokenView, status_code=201)
async def mint_user_token(
    user_id: str, body: TokenCreate, actor: ActorDep, database: DatabaseDep
) -> CreatedTokenView:
    """Mint a token for a bot (users.reset_credentials), or for oneself. People mint their
    own tokens; nobody mints one for another person."""
    return await _create(database, actor, user_id, body)


@router.delete("/users/{user_id}/tokens/{token_id}", status_code=204)
async def revoke_user_token(
    user_id: str, token_id: str, actor: ActorDep, database: DatabaseDep
) -> Response:
    """Revoke a user's token (users.reset_credentials, or one's own)."""
    return await _revoke(database, actor, user_id, token_id)
