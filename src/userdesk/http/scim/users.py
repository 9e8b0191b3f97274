"""SCIM Users (RFC 7644 §3): userdesk users as SCIM resources, changed through the same
actions as the console, so every rule (seats, the last owner, permissions, audit) holds.

`active: false` deactivates, `active: true` activates, DELETE deletes. A user created over
SCIM starts Pending, like one created by hand, until their first sign-in; the address an
identity provider sends counts as verified. A user has one address: of several sent, the
primary one (else the first) is kept.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from scim2_models import (
    Context,
    Email,
    EnterpriseUser,
    GroupMembership,
    Manager,
    Meta,
    Name,
    PatchOp,
    Photo,
    SearchRequest,
)

from userdesk.actions import users as user_actions
from userdesk.actions.context import Actor
from userdesk.actions.inputs import UserCreate, UserUpdate
from userdesk.actions.rules import lock_user
from userdesk.actions.seats import lock_workspace
from userdesk.db import Database
from userdesk.errors import InvalidInput
from userdesk.http.deps import DatabaseDep
from userdesk.http.scim.discovery import ScimUser, base_url
from userdesk.http.scim.protocol import (
    PREFIX,
    ScimActor,
    check_if_match,
    etag,
    json_body,
    list_filter,
    list_response,
    page_of,
    scim_input,
    scim_response,
    sort_path,
)
from userdesk.models import AvatarKind, User, UserStatus
from userdesk.queries import scim as scim_queries
from userdesk.queries import users as user_queries

router = APIRouter(prefix=f"{PREFIX}/Users", tags=["scim"], include_in_schema=False)

ENTERPRISE_URN = str(EnterpriseUser.__schema__)

# --- representation -------------------------------------------------------------------------


def to_scim(user: User, base: str) -> Any:
    """A userdesk user as a SCIM User: only what is set, as it was set."""
    name = None
    if user.formatted_name or user.given_name or user.family_name:
        name = Name(
            formatted=user.formatted_name,
            given_name=user.given_name,
            family_name=user.family_name,
        )
    resource = ScimUser(
        id=user.public_id,
        external_id=user.external_id,
        user_name=user.username,
        name=name,
        display_name=None if user.name_derived else user.name,
        nick_name=user.nickname,
        title=user.title,
        user_type=user.employment_type,
        locale=user.locale,
        timezone=user.timezone,
        active=user.status is not UserStatus.DEACTIVATED,
        emails=[Email(value=user.email, type=user.email_type, primary=user.email_primary)],
        photos=_photos(user),
        groups=[
            GroupMembership(
                value=r.public_id, display=r.display_name, ref=f"{base}/Groups/{r.public_id}"
            )
            for r in user.roles
        ]
        or None,
        meta=Meta(
            resource_type="User",
            created=user.created_at,
            last_modified=user.updated_at,
            location=f"{base}/Users/{user.public_id}",
            version=user_etag(user),
        ),
    )
    manager = user.manager
    if user.employee_number or user.department or user.organization or manager is not None:
        resource[EnterpriseUser] = EnterpriseUser(
            employee_number=user.employee_number,
            department=user.department,
            organization=user.organization,
            manager=(
                Manager(value=manager.public_id, ref=f"{base}/Users/{manager.public_id}")
                if manager is not None
                else None
            ),
        )
    return resource


def user_etag(user: User) -> str:
    """The user's version, and the display names of their groups (a group renamed changes
    how the user reads, not the user's row)."""
    names = ",".join(sorted(role.display_name for role in user.roles))
    return etag(f"{user.version}.{zlib.crc32(names.encode()):08x}")


def _photos(user: User) -> list[Photo] | None:
    """The picture URL as a photo; one SCIM cannot carry (userdesk's rule for URLs is more
    lenient than RFC 3986) is left out rather than failing every read of the user."""
    if user.avatar_kind is not AvatarKind.URL or not user.avatar_url:
        return None
    try:
        return [Photo(value=user.avatar_url, type="photo")]
    except ValidationError:
        return None


def _pick(entries: list[Any] | None, current: str | None = None) -> Any:
    """Of a multi-valued attribute, the entry kept: the primary one; else, of several, one
    that is not `current` (Entra changes an address without a type by adding a second
    entry); else the first."""
    if not entries:
        return None
    primary = next((e for e in entries if e.primary), None)
    if primary is not None:
        return primary
    if current is not None and len(entries) > 1:
        return next((e for e in entries if e.value != current), entries[0])
    return entries[0]


def _blank_to_none(value: Any) -> Any:
    """Providers send "" for an empty attribute; userdesk stores nothing for it."""
    return None if isinstance(value, str) and not value.strip() else value


def from_scim(resource: Any, current_email: str | None = None) -> dict[str, Any]:
    """The userdesk fields a SCIM User describes (None where it sets nothing)."""
    return {k: _blank_to_none(v) for k, v in _fields(resource, current_email).items()}


def _fields(resource: Any, current_email: str | None) -> dict[str, Any]:
    name = resource.name
    email = _pick(resource.emails, current_email)
    photo = _pick(resource.photos)
    enterprise = resource[EnterpriseUser]
    manager = enterprise.manager if enterprise is not None else None
    email_type = email.type if email is not None else None
    return {
        "username": resource.user_name,
        "email": email.value if email is not None else None,
        "email_type": str(email_type.value if hasattr(email_type, "value") else email_type)
        if email_type is not None
        else None,
        "email_primary": email.primary if email is not None else None,
        "display_name": resource.display_name,
        "formatted_name": name.formatted if name else None,
        "given_name": name.given_name if name else None,
        "family_name": name.family_name if name else None,
        "nickname": resource.nick_name,
        "title": resource.title,
        "employment_type": resource.user_type,
        "locale": resource.locale,
        "timezone": resource.timezone,
        "avatar_url": str(photo.value) if photo is not None and photo.value else None,
        "external_id": resource.external_id,
        "employee_number": enterprise.employee_number if enterprise else None,
        "department": enterprise.department if enterprise else None,
        "organization": enterprise.organization if enterprise else None,
        "manager": manager.value if manager is not None else None,
    }


def _parse(body: dict[str, Any], context: Context) -> Any:
    with scim_input():
        return ScimUser.model_validate(body, scim_ctx=context)


def _entra_manager(body: dict[str, Any]) -> dict[str, Any]:
    """Microsoft Entra sets the manager with the id as a bare string value."""
    operations = body.get("Operations")
    for operation in operations if isinstance(operations, list) else []:
        if (
            isinstance(operation, dict)
            and str(operation.get("path", "")).lower().endswith(":manager")
            and isinstance(operation.get("value"), str)
        ):
            operation["value"] = {"value": operation["value"]}
    return body


# --- applying a desired state through the actions ------------------------------------------


async def _apply(
    database: Database,
    request: Request,
    actor: Actor,
    user_id: str,
    desire: Callable[[User], Any],
) -> None:
    """Make the user what `desire(user)` says, a SCIM User computed from the user as they
    are under their row lock (so a change committed meanwhile is neither lost nor undone),
    in one transaction. Only what differs is changed: the audit log and the version move
    only for real changes."""
    async with database.transaction() as session:
        # The workspace before the user: the lock order every action keeps (deactivating,
        # activating and deleting lock it), or this would deadlock with them.
        await lock_workspace(session)
        user = await lock_user(session, user_id)
        check_if_match(request, user_etag(user))
        resource = desire(user)
        desired = from_scim(resource, current_email=user.email)
        current = from_scim(to_scim(user, base_url(request)))
        changes = {k: v for k, v in desired.items() if k != "display_name" and current.get(k) != v}
        if "email" in changes and changes["email"] is None:
            raise InvalidInput.one("emails", "required", "a user needs an email address")
        if "username" in changes and changes["username"] is None:
            raise InvalidInput.one("userName", "required", "a user needs a userName")
        named = desired["display_name"]
        if named is not None and (named != user.name or user.name_derived):
            changes["name"] = named
        elif named is None and not user.name_derived:
            changes["name_derived"] = True  # the action derives the name from the others
        if resource.password is not None and not await database.services.passwords.verify(
            user.password_hash, resource.password
        ):
            # Providers that push the password with every update do not reset it each time.
            changes["password"] = resource.password
        if changes:
            if "email" in changes:
                changes["email_verified"] = True  # the identity provider vouches for it
            data = UserUpdate.model_validate(changes)
            await user_actions.update_user(session, actor=actor, user_id=user_id, data=data)
        if resource.active is False and user.status is not UserStatus.DEACTIVATED:
            await user_actions.deactivate_user(session, actor=actor, user_id=user_id)
        elif resource.active is True and user.status is UserStatus.DEACTIVATED:
            await user_actions.activate_user(session, actor=actor, user_id=user_id)


async def _answer(
    database: Database, request: Request, actor: Actor, user_id: str, status: int = 200
) -> JSONResponse:
    async with database.reader() as session:
        user = await user_queries.get_user(session, viewer=actor, user_id=user_id)
    base = base_url(request)
    body = to_scim(user, base).model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    headers = {"ETag": user_etag(user)}
    if status == 201:
        headers["Location"] = f"{base}/Users/{user.public_id}"
    return scim_response(body, status, headers)


# --- routes ----------------------------------------------------------------------------------


def _search(params: dict[str, Any]) -> Any:
    with scim_input():
        return SearchRequest.model_validate(params, scim_ctx=Context.SEARCH_REQUEST)


async def _listing(
    request: Request, database: Database, actor: Actor, params: dict[str, Any]
) -> JSONResponse:
    # The filter is parsed here, not by SearchRequest: an error then says invalidFilter.
    condition = list_filter(params.pop("filter", None), scim_queries.user_filter)
    search = _search(params)
    path = sort_path(search)
    order = scim_queries.sort_column(path) if path is not None else None
    start, count, descending = page_of(search)
    async with database.reader() as session:
        found = await scim_queries.search_users(
            session,
            viewer=actor,
            condition=condition,
            order=order,
            descending=descending,
            start=start - 1,
            count=count,
        )
    base = base_url(request)
    resources = [
        to_scim(user, base).model_dump(
            scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=search
        )
        for user in found.users
    ]
    return list_response(resources, total=found.total, start=start)


@router.get("")
async def list_users(request: Request, actor: ScimActor, database: DatabaseDep) -> JSONResponse:
    return await _listing(request, database, actor, dict(request.query_params))


@router.post("/.search")
async def search_users(request: Request, actor: ScimActor, database: DatabaseDep) -> JSONResponse:
    body = await json_body(request)
    body.pop("schemas", None)
    return await _listing(request, database, actor, body)


@router.post("")
async def create_user(request: Request, actor: ScimActor, database: DatabaseDep) -> JSONResponse:
    resource = _parse(await json_body(request), Context.RESOURCE_CREATION_REQUEST)
    fields = from_scim(resource)
    if fields["email"] is None:
        raise InvalidInput.one("emails", "required", "a user needs an email address")
    values = {k: v for k, v in fields.items() if v is not None}
    values.pop("display_name", None)
    # A stand-in when nobody named them: the action derives the name (and without a
    # userName the input is refused anyway).
    values["name"] = fields["display_name"] or fields["username"] or "-"
    values["name_derived"] = fields["display_name"] is None  # the action derives it
    values["email_verified"] = True  # the identity provider vouches for the address
    if resource.password:
        values["password"] = resource.password
    data = UserCreate.model_validate(values)
    async with database.transaction() as session:
        user = await user_actions.create_user(
            session, actor=actor, data=data, active=resource.active is not False
        )
        public_id = user.public_id
    return await _answer(database, request, actor, public_id, status=201)


@router.get("/{user_id}")
async def get_user(
    user_id: str, request: Request, actor: ScimActor, database: DatabaseDep
) -> Response:
    async with database.reader() as session:
        user = await user_queries.get_user(session, viewer=actor, user_id=user_id)
    tag = user_etag(user)
    if tag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers={"ETag": tag})
    search = _search(dict(request.query_params))
    body = to_scim(user, base_url(request)).model_dump(
        scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=search
    )
    return scim_response(body, headers={"ETag": tag})


@router.put("/{user_id}")
async def replace_user(
    user_id: str, request: Request, actor: ScimActor, database: DatabaseDep
) -> JSONResponse:
    resource = _parse(await json_body(request), Context.RESOURCE_REPLACEMENT_REQUEST)
    await _apply(database, request, actor, user_id, lambda _user: resource)
    return await _answer(database, request, actor, user_id)


@router.patch("/{user_id}")
async def patch_user(
    user_id: str, request: Request, actor: ScimActor, database: DatabaseDep
) -> JSONResponse:
    body = _entra_manager(await json_body(request))
    with scim_input():
        patch = PatchOp[ScimUser].model_validate(body, scim_ctx=Context.RESOURCE_PATCH_REQUEST)
    base = base_url(request)

    def patched(user: User) -> Any:
        resource = to_scim(user, base)
        with scim_input():
            patch.patch(resource)
        return resource

    await _apply(database, request, actor, user_id, patched)
    return await _answer(database, request, actor, user_id)


@router.delete("/{user_id}", status_code=204)
async def delete_user(
    user_id: str, request: Request, actor: ScimActor, database: DatabaseDep
) -> Response:
    async with database.transaction() as session:
        await lock_workspace(session)  # the actions' lock order: the workspace, then users
        user = await lock_user(session, user_id)
        check_if_match(request, user_etag(user))
        await user_actions.delete_user(session, actor=actor, user_id=user_id)
    return Response(status_code=204)
