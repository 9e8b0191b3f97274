"""Roles with the number of users holding each."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.errors import NotFound
from userdesk.models import Role, user_roles


def _with_holders():  # type: ignore[no-untyped-def]
    holders = (
        select(func.count())
        .select_from(user_roles)
        .where(user_roles.c.role_id == Role.id)
        .correlate(Role)
        .scalar_subquery()
    )
    return select(Role, holders.label("holders"))


async def roles_only(session: AsyncSession, *, viewer: Actor) -> list[Role]:
    """The roles in list_roles' order, without counting their holders (a count reads every
    user's roles: for pages that only offer the roles as choices)."""
    del viewer
    return list(await session.scalars(select(Role).order_by(Role.built_in.desc(), Role.name)))


async def list_roles(session: AsyncSession, *, viewer: Actor) -> list[tuple[Role, int]]:
    """Every signed-in user may see the roles that exist (they appear on every profile)."""
    del viewer
    rows = await session.execute(_with_holders().order_by(Role.built_in.desc(), Role.name))
    return [(role, holders) for role, holders in rows]


async def get_role(session: AsyncSession, *, viewer: Actor, name: str) -> tuple[Role, int]:
    del viewer
    row = (await session.execute(_with_holders().where(Role.name == name))).first()
    if row is None:
        raise NotFound(f"no role named {name}")
    return row[0], row[1]
