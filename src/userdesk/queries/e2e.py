"""Reading end-to-end encryption keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.errors import NotFound, PermissionDenied
from userdesk.models import E2EKeys, User


async def own_keys(session: AsyncSession, *, viewer: Actor) -> E2EKeys:
    if viewer.user_id is None:
        raise PermissionDenied("only a signed-in user has keys of their own")
    keys = await session.get(E2EKeys, viewer.user_id)
    if keys is None:
        raise NotFound("you have no end-to-end encryption keys stored")
    return keys


async def public_key(session: AsyncSession, *, viewer: Actor, user_id: str) -> E2EKeys:
    """Any signed-in user may read a user's public key by id (never the private one): it is
    what a client encrypts to, and ids are unguessable. The viewer only needs to be someone."""
    del viewer
    keys = await session.scalar(
        select(E2EKeys).join(User, User.id == E2EKeys.user_id).where(User.public_id == user_id)
    )
    if keys is None:
        raise NotFound(f"no user with id {user_id} has end-to-end encryption keys")
    return keys
