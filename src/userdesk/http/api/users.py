"""/api/v1/users: the Users page's data and every action on a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict

from userdesk.actions import users as user_actions
from userdesk.actions.inputs import RoleList, UserCreate, UserUpdate
from userdesk.actions.outbox import queued_email_warning
from userdesk.errors import InvalidInput
from userdesk.http.deps import ActorDep, DatabaseDep
from userdesk.http.problems import problem_responses
from userdesk.models import UserStatus
from userdesk.queries import users as user_queries
from userdesk.queries import workspace as workspace_queries
from userdesk.security.permissions import Permission
from userdesk.views import UserListView, UserView

router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=problem_responses())


class RolesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: RoleList


@router.get("", response_model=UserListView)
async def list_users(
    actor: ActorDep,
    database: DatabaseDep,
    status: UserStatus | None = None,
    q: Annotated[str | None, Query(max_length=user_queries.MAX_QUERY_LENGTH)] = None,
    role: Annotated[str | None, Query(max_length=64)] = None,
    sort: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=user_queries.MAX_LIMIT)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=2000, description="A next_cursor: the page after it.")
    ] = None,
    before: Annotated[
        str | None, Query(max_length=2000, description="A prev_cursor: the page before it.")
    ] = None,
    last: Annotated[bool, Query(description="The last page (as cheap as the first).")] = False,
) -> UserListView:
    """Users with tab counts for the current search and role filter, and seat usage; sort by
    name, username, email, status, created_at or last_login_at, with '-' for descending.
    Walk forward with `cursor=next_cursor`, backward with `before=prev_cursor`, or start at
    the end with `last=true`."""
    given = [name for name, value in (("cursor", cursor), ("before", before)) if value]
    if last:
        given.append("last")
    if len(given) > 1:
        raise InvalidInput.one(
            given[1], "exclusive", f"give at most one of cursor, before and last (got {given})"
        )
    async with database.reader() as session:
        window = await user_queries.browse_users(
            session,
            viewer=actor,
            status=status,
            q=q,
            role=role,
            sort=sort,
            limit=limit,
            after=cursor,
            before=before,
            last=last,
        )
        seats = (
            await workspace_queries.get_seats(session, viewer=actor)
            if actor.has(Permission.SEATS_READ)
            else None
        )
        return UserListView.of_window(window, seats)


@router.post("", status_code=201, response_model=UserView)
async def create_user(
    body: UserCreate, actor: ActorDep, database: DatabaseDep, response: Response
) -> UserView:
    async with database.transaction() as session:
        user = await user_actions.create_user(session, actor=actor, data=body)
        view = UserView.of(user)
        view.warning = await queued_email_warning(session)
    response.headers["Location"] = f"/api/v1/users/{view.id}"
    return view


@router.get("/{user_id}", response_model=UserView)
async def get_user(user_id: str, actor: ActorDep, database: DatabaseDep) -> UserView:
    async with database.reader() as session:
        return UserView.of(await user_queries.get_user(session, viewer=actor, user_id=user_id))


@router.patch("/{user_id}", response_model=UserView)
async def update_user(
    user_id: str, body: UserUpdate, actor: ActorDep, database: DatabaseDep
) -> UserView:
    async with database.transaction() as session:
        user = await user_actions.update_user(session, actor=actor, user_id=user_id, data=body)
        return UserView.of(user)


@router.delete("/{user_id}", status_code=204)
async def delete_user(user_id: str, actor: ActorDep, database: DatabaseDep) -> Response:
    async with database.transaction() as session:
        await user_actions.delete_user(session, actor=actor, user_id=user_id)
    return Response(status_code=204)


@router.put("/{user_id}/roles", response_model=UserView)
async def set_roles(
    user_id: str, body: RolesBody, actor: ActorDep, database: DatabaseDep
) -> UserView:
    """Replace the user's roles. Make Admin and Remove Admin are this call."""
    async with database.transaction() as session:
        user = await user_actions.set_roles(session, actor=actor, user_id=user_id, roles=body.roles)
        return UserView.of(user)


@router.post("/{user_id}/deactivate", response_model=UserView)
async def deactivate_user(user_id: str, actor: ActorDep, database: DatabaseDep) -> UserView:
    async with database.transaction() as session:
        return UserView.of(
            await user_actions.deactivate_user(session, actor=actor, user_id=user_id)
        )


@router.post("/{user_id}/activate", response_model=UserView)
async def activate_user(user_id: str, actor: ActorDep, database: DatabaseDep) -> UserView:
    async with database.transaction() as session:
        return UserView.of(await user_actions.activate_user(session, actor=actor, user_id=user_id))


@router.post("/{user_id}/welcome-email", response_model=UserView)
async def send_welcome_email(user_id: str, actor: ActorDep, database: DatabaseDep) -> UserView:
    """Email the user the welcome message (with the sign-in link) again."""
    async with database.transaction() as session:
        user = await user_actions.send_welcome_email(session, actor=actor, user_id=user_id)
        view = UserView.of(user)
        view.warning = await queued_email_warning(session)
        return view
