"""/api/v1/roles: built-in and custom roles."""

from __future__ import annotations

from fastapi import APIRouter, Response

from userdesk.actions import roles as role_actions
from userdesk.actions.inputs import RoleCreate, RoleUpdate
from userdesk.http.deps import ActorDep, DatabaseDep
from userdesk.http.problems import problem_responses
from userdesk.queries import roles as role_queries
from userdesk.views import RoleListView, RoleView

router = APIRouter(prefix="/api/v1/roles", tags=["roles"], responses=problem_responses())


@router.get("", response_model=RoleListView)
async def list_roles(actor: ActorDep, database: DatabaseDep) -> RoleListView:
    async with database.reader() as session:
        rows = await role_queries.list_roles(session, viewer=actor)
        return RoleListView(items=[RoleView.of(role, holders) for role, holders in rows])


@router.post("", status_code=201, response_model=RoleView)
async def create_role(
    body: RoleCreate, actor: ActorDep, database: DatabaseDep, response: Response
) -> RoleView:
    async with database.transaction() as session:
        role = await role_actions.create_role(session, actor=actor, data=body)
        view = RoleView.of(role, 0)
    response.headers["Location"] = f"/api/v1/roles/{view.name}"
    return view


@router.get("/{name}", response_model=RoleView)
async def get_role(name: str, actor: ActorDep, database: DatabaseDep) -> RoleView:
    async with database.reader() as session:
        role, holders = await role_queries.get_role(session, viewer=actor, name=name)
        return RoleView.of(role, holders)


@router.patch("/{name}", response_model=RoleView)
async def update_role(
    name: str, body: RoleUpdate, actor: ActorDep, database: DatabaseDep
) -> RoleView:
    async with database.transaction() as session:
        role = await role_actions.update_role(session, actor=actor, name=name, data=body)
        role, holders = await role_queries.get_role(session, viewer=actor, name=role.name)
        return RoleView.of(role, holders)


@router.delete("/{name}", status_code=204)
async def delete_role(name: str, actor: ActorDep, database: DatabaseDep) -> Response:
    async with database.transaction() as session:
        await role_actions.delete_role(session, actor=actor, name=name)
    return Response(status_code=204)
