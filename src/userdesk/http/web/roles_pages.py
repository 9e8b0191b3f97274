"""The Roles page: every role (built-in first) with its holders and permissions, and a panel
beside the list showing one role's permissions as a checklist; for those who may manage
roles, New role, Edit and Delete of custom roles, through the role actions.

The URL carries the view (the open role, editing, a new role), so a view can be bookmarked
and reloaded; htmx (`HX-Target: panel`) gets the panel alone. A change answers with the
panel, the refreshed list (out of band) and a toast: one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from userdesk.actions import roles as role_actions
from userdesk.actions.abilities import role_abilities
from userdesk.actions.inputs import RoleCreate, RoleUpdate
from userdesk.errors import Duplicate, InvalidInput, NotFound, RoleInUse
from userdesk.http.web.render import (
    ConsoleRoute,
    Viewer,
    ViewerDep,
    fragments,
    is_htmx,
    page,
    redirect,
    render,
    toast,
)
from userdesk.models import Role
from userdesk.queries import roles as role_queries
from userdesk.security.permissions import BUILT_IN_ROLES, PERMISSION_DESCRIPTIONS, Permission

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
# The built-in roles as the catalogue lists them, from the most to the least powerful.
BUILT_IN_ORDER = {name: index for index, name in enumerate(BUILT_IN_ROLES)}


@dataclass(frozen=True)
class View:
    """What the Roles page shows, as its URL says."""

    role: str = ""
    edit: bool = False
    new: bool = False

    @classmethod
    def parse(cls, params: dict[str, str]) -> View:
        return cls(
            role=params.get("role", "")[:64],
            edit=params.get("edit") == "1",
            new=params.get("new") == "1",
        )

    def url(self, **changes: Any) -> str:
        if "role" in changes or "new" in changes:
            changes.setdefault("edit", False)
        view = replace(self, **changes)
        params = {
            "role": "" if view.new else view.role,
            "edit": "1" if view.edit and view.role and not view.new else "",
            "new": "1" if view.new else "",
        }
        query = urlencode({k: v for k, v in params.items() if v})
        return "/roles" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class PermissionChoice:
    code: str
    description: str
    checked: bool
    # Nobody grants a permission they do not hold: those are shown, disabled.
    grantable: bool


@dataclass
class RoleForm:
    """What was typed in the New role or Edit role form."""

    name: str = ""
    description: str = ""
    permissions: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    # The name identity providers see (SCIM's displayName); blank: the same as the name,
    # following it when it is renamed.
    display_name: str = ""

    @classmethod
    def of(cls, role: Role) -> RoleForm:
        shown = role.display_name if role.display_name != role.name else ""
        return cls(role.name, role.description, sorted(role.permissions), display_name=shown)

    @classmethod
    def parse(cls, form: FormData) -> RoleForm:
        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        return cls(
            name=text("name").strip(),
            description=text("description").strip(),
            permissions=sorted({p for p in form.getlist("permissions") if isinstance(p, str)}),
            display_name=text("display_name").strip(),
        )

    def fields(self) -> dict[str, Any]:
        fields = {
            "name": self.name,
            "description": self.description,
            "permissions": self.permissions,
        }
        # Blank is "the same as the name", as the hint says: sent as the name, so a display
        # name set apart before is reset and follows renames again.
        fields["display_name"] = self.display_name or self.name
        return fields


def _described(permissions: list[str]) -> list[tuple[str, str]]:
    """A role's permissions in the catalogue's order, each with its description."""
    held = set(permissions)
    return [(p.value, PERMISSION_DESCRIPTIONS[p]) for p in Permission if p.value in held]


def _choices(viewer: Viewer, checked: list[str]) -> list[PermissionChoice]:
    return [
        PermissionChoice(
            code=p.value,
            description=PERMISSION_DESCRIPTIONS[p],
            checked=p.value in checked,
            grantable=p.value in viewer.actor.permissions,
        )
        for p in Permission
    ]


async def _list_values(session: AsyncSession, viewer: Viewer, view: View) -> dict[str, Any]:
    rows = await role_queries.list_roles(session, viewer=viewer.actor)
    rows.sort(key=lambda row: (not row[0].built_in, BUILT_IN_ORDER.get(row[0].name, 0)))
    return {
        "view": view,
        "rows": [(role, holders, _described(role.permissions)) for role, holders in rows],
    }


async def _panel_values(
    session: AsyncSession,
    viewer: Viewer,
    view: View,
    *,
    form: RoleForm | None = None,
    refusal: str = "",
) -> dict[str, Any]:
    values: dict[str, Any] = {"view": view, "role": None, "form": None, "refusal": refusal}
    if view.new:
        if viewer.can(Permission.ROLES_MANAGE):
            form = form or RoleForm()
            values.update(form=form, choices=_choices(viewer, form.permissions))
        return values
    if not view.role:
        return values
    role, holders = await role_queries.get_role(session, viewer=viewer.actor, name=view.role)
    can = role_abilities(viewer.actor, role)
    values.update(role=role, holders=holders, can=can)
    if view.edit and can.edit:
        form = form or RoleForm.of(role)
        values.update(form=form, choices=_choices(viewer, form.permissions))
    else:
        values["checklist"] = _choices(viewer, sorted(role.permissions))
    return values


@router.get("/roles", response_class=HTMLResponse)
async def roles_page(request: Request, viewer: ViewerDep) -> Response:
    view = View.parse(dict(request.query_params))
    target = request.headers.get("hx-target") if is_htmx(request) else None
    if request.headers.get("hx-history-restore-request"):
        target = None
    async with request.app.state.database.reader() as session:
        if target == "panel":
            panel = await _panel_values(session, viewer, view)
            return page("_role_panel.html", viewer=viewer, oob=False, **panel)
        values = await _list_values(session, viewer, view)
        try:
            panel = await _panel_values(session, viewer, view)
        except NotFound:  # a bookmark of a role since deleted or renamed: the list alone
            view = View()
            panel = await _panel_values(session, viewer, view)
    return page("roles.html", viewer=viewer, section="roles", oob=False, **{**values, **panel})


def _form_errors(exc: InvalidInput | Duplicate) -> dict[str, str]:
    if isinstance(exc, Duplicate):
        return {exc.field or "form": exc.message}
    errors: dict[str, str] = {}
    for error in exc.errors:
        # "permissions.3" is the permissions field.
        errors.setdefault(error.field.split(".")[0], error.message)
    return errors


async def _answer(request: Request, viewer: Viewer, view: View, message: str) -> Response:
    """The panel for `view`, the refreshed list out of band, and a toast."""
    if not is_htmx(request):
        return redirect(request, view.url())
    async with request.app.state.database.reader() as session:
        panel = await _panel_values(session, viewer, view)
        values = await _list_values(session, viewer, view)
    parts = [
        render("_role_panel.html", viewer=viewer, oob=False, **panel),
        render("_role_list.html", viewer=viewer, oob=True, **values),
        toast(message),
    ]
    return fragments(*parts, headers={"HX-Push-Url": view.url()})


async def _form_refused(
    request: Request, viewer: Viewer, view: View, form: RoleForm, exc: InvalidInput | Duplicate
) -> Response:
    """The form again, with what was typed and each error beside its field; or, when the
    viewer has no form for this role (a crafted request), the error as the console shows it."""
    form.errors = _form_errors(exc)
    async with request.app.state.database.reader() as session:
        panel = await _panel_values(session, viewer, view, form=form)
    if panel["form"] is None:
        raise exc
    return page("_role_panel.html", status=422, viewer=viewer, oob=False, **panel)


@router.post("/roles", response_class=HTMLResponse)
async def create_role(request: Request, viewer: ViewerDep) -> Response:
    form = RoleForm.parse(await request.form())
    try:
        data = RoleCreate.model_validate(form.fields())
    except ValidationError as exc:
        invalid = InvalidInput.from_pydantic(exc.errors(), drop_location=False)
        return await _form_refused(request, viewer, View(new=True), form, invalid)
    try:
        async with request.app.state.database.transaction() as session:
            role = await role_actions.create_role(session, actor=viewer.actor, data=data)
            name = role.name
    except (InvalidInput, Duplicate) as exc:
        return await _form_refused(request, viewer, View(new=True), form, exc)
    return await _answer(request, viewer, View(role=name), f"The role {name} was created.")


@router.post("/roles/{name}/edit", response_class=HTMLResponse)
async def edit_role(request: Request, name: str, viewer: ViewerDep) -> Response:
    """Save the Edit role form. A built-in role is refused by the action (BuiltInRole), which
    the console shows as a refusal, not as errors of the form."""
    form = RoleForm.parse(await request.form())
    view = View(role=name, edit=True)
    try:
        data = RoleUpdate.model_validate(form.fields())
    except ValidationError as exc:
        invalid = InvalidInput.from_pydantic(exc.errors(), drop_location=False)
        return await _form_refused(request, viewer, view, form, invalid)
    try:
        async with request.app.state.database.transaction() as session:
            role = await role_actions.update_role(session, actor=viewer.actor, name=name, data=data)
            saved = role.name
    except (InvalidInput, Duplicate) as exc:
        return await _form_refused(request, viewer, view, form, exc)
    return await _answer(request, viewer, View(role=saved), f"The role {saved} was saved.")


@router.post("/roles/{name}/delete", response_class=HTMLResponse)
async def delete_role(request: Request, name: str, viewer: ViewerDep) -> Response:
    """Delete a custom role. While someone holds it the action refuses (RoleInUse): the panel
    says so at its top, above the link to the holders, and the list's counts are refreshed."""
    try:
        async with request.app.state.database.transaction() as session:
            await role_actions.delete_role(session, actor=viewer.actor, name=name)
    except RoleInUse as exc:
        if not is_htmx(request):
            raise
        view = View(role=name)
        async with request.app.state.database.reader() as session:
            panel = await _panel_values(session, viewer, view, refusal=exc.message)
            values = await _list_values(session, viewer, view)
        parts = [
            render("_role_panel.html", viewer=viewer, oob=False, **panel),
            render("_role_list.html", viewer=viewer, oob=True, **values),
        ]
        return fragments(*parts, status=409)
    return await _answer(request, viewer, View(), f"The role {name} was deleted.")
