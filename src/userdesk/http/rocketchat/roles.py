"""Rocket.Chat's roles.* methods over userdesk's roles (a role's _id is its name, as for
Rocket.Chat's built-in roles)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import users as user_actions
from userdesk.errors import NotFound
from userdesk.http.deps import DatabaseDep
from userdesk.http.rocketchat.protocol import (
    API,
    RocketChatActor,
    RocketChatError,
    body_of,
    iso,
    named_user,
    ok,
    page_of,
    role_shape,
    text,
)
from userdesk.models import Role, User
from userdesk.queries import rocketchat as rc_queries
from userdesk.queries import roles as role_queries
from userdesk.queries.scim import search_users
from userdesk.queries.workspace import get_workspace

router = APIRouter(prefix=API.rstrip("/"), include_in_schema=False)


async def _shape(session: AsyncSession, role: Role) -> dict[str, Any]:
    workspace = await get_workspace(session)
    return role_shape(role, two_factor=role.name in (workspace.two_factor_required_roles or []))


async def _role(session: AsyncSession, actor: Any, name: str | None, error_type: str) -> Role:
    if not name:
        raise RocketChatError(error_type, "Role not found")
    try:
        role, _ = await role_queries.get_role(session, viewer=actor, name=name)
    except NotFound:
        raise RocketChatError(error_type, "Role not found") from None
    return role


@router.get("/roles.list")
async def list_roles(actor: RocketChatActor, database: DatabaseDep) -> Any:
    async with database.reader() as session:
        roles = await role_queries.roles_only(session, viewer=actor)
        return ok(roles=[await _shape(session, role) for role in roles])


def _role_name(body: dict[str, Any]) -> str | None:
    return text(body.get("roleId"), "roleId") or text(body.get("roleName"), "roleName")


@router.post("/roles.addUserToRole")
async def add_user_to_role(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """`roleId` (or the older `roleName`) and `username`; `roomId` has no meaning here."""
    body = await body_of(request)
    async with database.transaction() as session:
        role = await _role(session, actor, _role_name(body), "error-role-not-found")
        user = await named_user(session, actor, body)
        if role.name in {r.name for r in user.roles}:
            raise RocketChatError("error-user-already-in-role", "User already in role")
        await user_actions.grant_role(session, actor=actor, user_id=user.public_id, role=role.name)
        return ok(role=await _shape(session, role))


@router.post("/roles.removeUserFromRole")
async def remove_user_from_role(
    request: Request, actor: RocketChatActor, database: DatabaseDep
) -> Any:
    body = await body_of(request)
    async with database.transaction() as session:
        role = await _role(session, actor, _role_name(body), "error-invalid-roleId")
        user = await named_user(session, actor, body)
        if role.name not in {r.name for r in user.roles}:
            raise RocketChatError("error-user-not-in-role", "User is not in this role")
        await user_actions.revoke_role(session, actor=actor, user_id=user.public_id, role=role.name)
        return ok(role=await _shape(session, role))


@router.get("/roles.getUsersInRole")
async def users_in_role(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """The role's holders by username, `offset` and `count` (at most 100)."""
    offset, count = page_of(request)
    async with database.reader() as session:
        role = await _role(session, actor, request.query_params.get("role"), "error-invalid-roleId")
        found = await search_users(
            session,
            viewer=actor,
            condition=rc_queries.holders_of(role.name),
            order=User.username_key,
            start=offset,
            count=count,
        )
    users = [
        {
            "_id": user.public_id,
            "name": user.name,
            "username": user.username,
            "emails": [{"address": user.email, "verified": user.email_verified}],
            "createdAt": iso(user.created_at),
            "_updatedAt": iso(user.updated_at),
        }
        for user in found.users
    ]
    return ok(users=users, total=found.total)
