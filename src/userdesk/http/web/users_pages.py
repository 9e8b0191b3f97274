"""The Users page: tabs with counts, search as you type, role filter, sortable columns, paging
both ways, the seats indicator, the User Info panel and the actions of each user's menu.

The URL carries the whole view (tab, q, role, sort, the page's cursor and the open user), so
a view can be bookmarked, shared and reloaded. htmx asks for parts of it: `HX-Target:
user-results` gets the table (and the tabs, out of band), `HX-Target: panel` the panel.
An action answers with the refreshed table for the view it was taken from (the browser's
`HX-Current-URL`), the panel and a toast: one round trip.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import available_timezones

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import e2e, two_factor
from userdesk.actions import passwords as password_actions
from userdesk.actions import users as user_actions
from userdesk.actions.abilities import abilities
from userdesk.actions.context import Actor
from userdesk.actions.inputs import AdminPasswordReset
from userdesk.actions.outbox import queued_email_warning
from userdesk.errors import Conflict, InvalidInput, NotFound
from userdesk.http.web.render import (
    MAIL_WARNING,
    ConsoleRoute,
    FormText,
    Viewer,
    ViewerDep,
    fragments,
    is_htmx,
    page,
    redirect,
    render,
    toast,
)
from userdesk.http.web.user_edit import EditForm, errors_by_field, role_choices, save
from userdesk.models import User, UserStatus
from userdesk.queries import roles as role_queries
from userdesk.queries import users as user_queries
from userdesk.queries.workspace import get_seats
from userdesk.security.permissions import ADMIN, Permission
from userdesk.services import services_of
from userdesk.views import UserView

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE = 25
COLUMNS = (("name", "Name"), ("username", "Username"), ("email", "Email"), ("status", "Status"))
TIMEZONES = sorted(available_timezones())


@dataclass(frozen=True)
class View:
    """What the Users page shows, as its URL says."""

    tab: str = "all"
    q: str = ""
    role: str = ""
    sort: str = user_queries.DEFAULT_SORT
    after: str = ""
    before: str = ""
    last: bool = False
    user: str = ""
    edit: bool = False

    @classmethod
    def parse(cls, params: dict[str, str]) -> View:
        tab = params.get("tab", "all")
        return cls(
            tab=tab if tab in user_queries.TABS else "all",
            q=params.get("q", "")[: user_queries.MAX_QUERY_LENGTH],
            role=params.get("role", "")[:64],
            sort=params.get("sort", "")[:20] or user_queries.DEFAULT_SORT,
            after=params.get("after", "")[:2000],
            before=params.get("before", "")[:2000],
            last=params.get("last") == "1",
            user=params.get("user", "")[:64],
            edit=params.get("edit") == "1",
        )

    def url(self, **changes: Any) -> str:
        """This view's URL with `changes`; a change of filter or sort starts at page one."""
        if "user" in changes:
            changes.setdefault("edit", False)
        if {"tab", "q", "role", "sort"} & changes.keys():
            changes = {"after": "", "before": "", "last": False, **changes}
        view = replace(self, **changes)
        params = {
            "tab": "" if view.tab == "all" else view.tab,
            "q": view.q,
            "role": view.role,
            "sort": "" if view.sort == user_queries.DEFAULT_SORT else view.sort,
            "after": view.after,
            "before": view.before,
            "last": "1" if view.last else "",
            "user": view.user,
            "edit": "1" if view.edit and view.user else "",
        }
        query = urlencode({k: v for k, v in params.items() if v})
        return "/users" + (f"?{query}" if query else "")

    def sort_url(self, field: str) -> str:
        ascending_now = self.sort == field
        return self.url(sort=f"-{field}" if ascending_now else field)

    def sort_state(self, field: str) -> str | None:
        if self.sort == field:
            return "ascending"
        if self.sort == f"-{field}":
            return "descending"
        return None


async def _list_values(session: AsyncSession, viewer: Viewer, view: View) -> dict[str, Any]:
    window = await user_queries.browse_users(
        session,
        viewer=viewer.actor,
        status=None if view.tab == "all" else UserStatus(view.tab),
        q=view.q or None,
        role=view.role or None,
        sort=view.sort,
        limit=PAGE_SIZE,
        after=view.after or None,
        before=view.before or None,
        last=view.last,
    )
    return {
        "view": view,
        "window": window,
        "rows": [(user, abilities(viewer.actor, user)) for user in window.items],
        "columns": COLUMNS,
    }


async def _panel_values(
    session: AsyncSession,
    viewer: Viewer,
    view: View,
    *,
    max_upload: int,
    form: EditForm | None = None,
) -> dict[str, Any]:
    if not view.user:
        return {"info": None, "editing": None}
    user = await user_queries.get_user(session, viewer=viewer.actor, user_id=view.user)
    info = _info(viewer, user, services_of(session).clock.now())
    editing = None
    if view.edit and info["can"].edit:
        editing = await _edit_values(session, viewer, user, form or EditForm.of(user))
        editing["max_upload"] = max_upload
    return {"info": info, "editing": editing, "view": view}


async def _edit_values(
    session: AsyncSession, viewer: Viewer, user: User, form: EditForm
) -> dict[str, Any]:
    roles = await role_queries.roles_only(session, viewer=viewer.actor)
    policy = await password_actions.policy_of(session)
    return {
        "form": form,
        "roles": role_choices(viewer.actor, roles, form.roles),
        "may_assign": viewer.can(Permission.ROLES_ASSIGN),
        "may_reset": viewer.can(Permission.USERS_RESET_CREDENTIALS),
        "rules": policy.check("", username=user.username, email=user.email),
        "checked": False,
        "max_length": policy.max_length,
        "timezones": TIMEZONES,
    }


def _max_upload(request: Request) -> int:
    return int(request.app.state.settings.max_body_bytes)


def _info(viewer: Viewer, user: User, now: datetime) -> dict[str, Any]:
    return {
        "user": user,
        "card": UserView.of(user),
        "can": abilities(viewer.actor, user),
        "now": now,
    }


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request, viewer: ViewerDep) -> Response:
    view = View.parse(dict(request.query_params))
    target = request.headers.get("hx-target") if is_htmx(request) else None
    if request.headers.get("hx-history-restore-request"):
        target = None
    async with request.app.state.database.reader() as session:
        if target == "panel":
            panel = await _panel_values(session, viewer, view, max_upload=_max_upload(request))
            return page("_user_panel.html", viewer=viewer, oob=False, **panel)
        values = await _list_values(session, viewer, view)
        if target == "user-results":
            return page("_user_results.html", viewer=viewer, oob=True, **values)
        try:
            panel = await _panel_values(session, viewer, view, max_upload=_max_upload(request))
        except NotFound:
            panel = {"info": None, "editing": None}
        seats = (
            await get_seats(session, viewer=viewer.actor)
            if viewer.can(Permission.SEATS_READ)
            else None
        )
        roles = [role.name for role in await role_queries.roles_only(session, viewer=viewer.actor)]
    return page(
        "users.html",
        viewer=viewer,
        section="users",
        banner_mail=True,
        seats=seats,
        roles=roles,
        oob=False,
        **{**values, **panel},
    )


def _view_of_caller(request: Request) -> View:
    """The view an action was taken from: the page's URL as htmx reports it, or the form's."""
    source = request.headers.get("hx-current-url") or request.headers.get("referer") or ""
    parts = urlsplit(source)
    if parts.path != "/users":
        return View()
    return View.parse(dict(parse_qsl(parts.query)))


Act = Callable[[AsyncSession, Actor, str], Awaitable[str]]


async def _act(request: Request, viewer: Viewer, user_id: str, act: Act) -> Response:
    """Run one action, then answer with the refreshed table, the panel and a toast."""
    database = request.app.state.database
    async with database.transaction() as session:
        message = await act(session, viewer.actor, user_id)
        warning = await queued_email_warning(session)
    view = _view_of_caller(request)
    if not is_htmx(request):
        return redirect(request, view.url())
    headers: dict[str, str] = {}
    async with database.reader() as session:
        try:
            panel = await _panel_values(session, viewer, view, max_upload=_max_upload(request))
        except NotFound:  # the user was deleted: close the panel
            view = replace(view, user="")
            panel = {"info": None, "editing": None}
            headers["HX-Replace-Url"] = view.url()
        values = await _list_values(session, viewer, view)
    parts = [
        render("_user_results.html", viewer=viewer, oob=True, **values),
        render("_user_panel.html", viewer=viewer, oob=True, **{"view": view, **panel}),
        toast(message),
    ]
    if warning:
        parts.append(toast(MAIL_WARNING, kind="warning"))
    return fragments(*parts, headers=headers)


def _label(user: User) -> str:
    return f"{user.name} (@{user.username})"


async def _make_admin(session: AsyncSession, actor: Actor, user_id: str) -> str:
    user = await user_actions.grant_role(session, actor=actor, user_id=user_id, role=ADMIN)
    return f"{_label(user)} is now an admin."


async def _remove_admin(session: AsyncSession, actor: Actor, user_id: str) -> str:
    user = await user_actions.revoke_role(session, actor=actor, user_id=user_id, role=ADMIN)
    return f"{_label(user)} is no longer an admin."


async def _deactivate(session: AsyncSession, actor: Actor, user_id: str) -> str:
    user = await user_actions.deactivate_user(session, actor=actor, user_id=user_id)
    return f"{_label(user)} was deactivated: their data is kept, their access ended."


async def _activate(session: AsyncSession, actor: Actor, user_id: str) -> str:
    user = await user_actions.activate_user(session, actor=actor, user_id=user_id)
    return f"{_label(user)} was activated ({user.status.value})."


async def _delete(session: AsyncSession, actor: Actor, user_id: str) -> str:
    user = await user_queries.get_user(session, viewer=actor, user_id=user_id)
    label = _label(user)
    await user_actions.delete_user(session, actor=actor, user_id=user_id)
    return f"{label} was deleted."


async def _reset_password(session: AsyncSession, actor: Actor, user_id: str) -> str:
    user = await password_actions.reset_password(
        session, actor=actor, user_id=user_id, data=AdminPasswordReset(mode="random")
    )
    return (
        f"A new random password was emailed to {user.email}; {user.name} must change it at "
        "the next sign-in, and every session of theirs was ended."
    )


async def _reset_two_factor(session: AsyncSession, actor: Actor, user_id: str) -> str:
    user = await two_factor.reset_two_factor(session, actor=actor, user_id=user_id)
    return f"Two-factor authentication of {_label(user)} was reset."


async def _reset_e2e_keys(session: AsyncSession, actor: Actor, user_id: str) -> str:
    user = await e2e.reset_keys(session, actor=actor, user_id=user_id)
    return f"The end-to-end encryption keys of {_label(user)} were reset."


ACTIONS: dict[str, Act] = {
    "make-admin": _make_admin,
    "remove-admin": _remove_admin,
    "deactivate": _deactivate,
    "activate": _activate,
    "delete": _delete,
    "reset-password": _reset_password,
    "reset-2fa": _reset_two_factor,
    "reset-e2e-keys": _reset_e2e_keys,
}


@router.post("/users/{user_id}/edit", response_class=HTMLResponse)
async def edit_user(request: Request, user_id: str, viewer: ViewerDep) -> Response:
    """Save the Edit User panel: every part through its action, in one transaction. Errors
    come back beside their fields, with what was typed kept (but no password)."""
    database = request.app.state.database
    form = await EditForm.parse(await request.form())
    view = replace(_view_of_caller(request), user=user_id, edit=True)
    try:
        async with database.transaction() as session:
            user = await user_queries.get_user(session, viewer=viewer.actor, user_id=user_id)
            done = await save(session, actor=viewer.actor, user=user, form=form)
            warning = await queued_email_warning(session)
    except (InvalidInput, Conflict) as exc:
        form.errors = errors_by_field(exc)
        form.password = ""
        async with database.reader() as session:
            panel = await _panel_values(
                session, viewer, view, max_upload=_max_upload(request), form=form
            )
        return page("_user_panel.html", status=422, viewer=viewer, oob=False, **panel)
    view = replace(view, edit=False)
    if not is_htmx(request):
        return redirect(request, view.url())
    async with database.reader() as session:
        panel = await _panel_values(session, viewer, view, max_upload=_max_upload(request))
        values = await _list_values(session, viewer, view)
    results = render("_user_results.html", viewer=viewer, oob=False, **values)
    parts = [
        render("_user_panel.html", viewer=viewer, oob=False, **panel),
        render("_oob.html", target="user-results", content=Markup(results)),
        render("_user_tabs.html", oob=True, **values),
        render("_user_filter_state.html", oob=True, **values),
        toast(f"{_label(panel['info']['user'])}: " + (", ".join(done) or "nothing changed") + "."),
    ]
    if warning:
        parts.append(toast(MAIL_WARNING, kind="warning"))
    return fragments(*parts, headers={"HX-Push-Url": view.url()})


@router.post("/users/{user_id}/edit/password-check", response_class=HTMLResponse)
async def check_user_password(
    request: Request, user_id: str, viewer: ViewerDep, password: FormText = ""
) -> Response:
    """Live policy feedback for a password an admin types for someone else."""
    async with request.app.state.database.reader() as session:
        user = await user_queries.get_user(session, viewer=viewer.actor, user_id=user_id)
        policy = await password_actions.policy_of(session)
    rules = policy.check(password[:4096], username=user.username, email=user.email)
    return page("_policy_feedback.html", rules=rules, checked=bool(password))


@router.post("/users/{user_id}/{action}", response_class=HTMLResponse)
async def user_action(request: Request, user_id: str, action: str, viewer: ViewerDep) -> Response:
    act = ACTIONS.get(action)
    if act is None:
        raise NotFound(f"there is no action {action!r}")
    return await _act(request, viewer, user_id, act)
