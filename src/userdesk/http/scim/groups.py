"""SCIM Groups (RFC 7643 §4.2, RFC 7644 §3): userdesk roles as SCIM groups, their holders
as members, changed through the role actions, so every rule (nobody grants more than they
hold, the last owner, a bot is never an owner, audit) holds.

A group's id is the role's public id (it never changes, whatever the role is renamed to);
its displayName is the role's display name, unique whatever its case. A group created over
SCIM is a role with no permissions, named (its slug) after the displayName. Adding a member
grants the role (grant_role), removing one takes it away (revoke_role: someone left with no
role gets the plain one). Built-in roles are groups too: their members change, their
displayName does not (but for its case). Deleting a group takes the role from everyone,
then deletes it.

Members are read and changed by id, never loaded as users: PATCH changes only the members
it names, and answers 204 unless asked for attributes; `excludedAttributes=members` skips
them altogether.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from scim2_models import (
    Context,
    Group,
    GroupMember,
    Meta,
    SCIMException,
    ScimFilter,
    SearchRequest,
)
from scim2_models.path.expressions import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import roles as role_actions
from userdesk.actions import users as user_actions
from userdesk.actions.context import Actor
from userdesk.actions.inputs import RoleCreate, RoleUpdate
from userdesk.actions.rules import lock_roles_changing_hands, lock_users
from userdesk.actions.seats import lock_workspace
from userdesk.db import Database
from userdesk.errors import InvalidInput, NotFound
from userdesk.http.deps import DatabaseDep
from userdesk.http.scim.discovery import base_url
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
from userdesk.models import Role
from userdesk.queries import scim as scim_queries
from userdesk.security.permissions import Permission

router = APIRouter(prefix=f"{PREFIX}/Groups", tags=["scim"], include_in_schema=False)

GROUP_URN = str(Group.__schema__)
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_MEMBER_CHANGES = role_actions.MAX_MEMBER_CHANGES
# Members a PUT may list: the group as it should be, most of them usually unchanged.
MAX_MEMBERS_LISTED = 10_000


def too_many(count: int) -> InvalidInput:
    return InvalidInput.one(
        "members",
        "tooMany",
        f"this request would add or remove {count} members; at most {MAX_MEMBER_CHANGES} "
        "in one request: send the changes in smaller PATCH requests",
    )


# --- representation -------------------------------------------------------------------------


def group_etag(role: Role) -> str:
    """The role's version: raised by every change of the role and by every member it gains
    or loses (rules.count_membership_changes)."""
    return etag(str(role.version))


def to_scim(role: Role, base: str, members: list[str] | None) -> Group:
    return Group(
        id=role.public_id,
        external_id=role.external_id,
        display_name=role.display_name,
        members=[
            GroupMember(value=member, ref=f"{base}/Users/{member}", type="User")
            for member in members
        ]
        if members
        else None,
        meta=Meta(
            resource_type="Group",
            created=role.created_at,
            last_modified=role.updated_at,
            location=f"{base}/Groups/{role.public_id}",
            version=group_etag(role),
        ),
    )


def _search(params: dict[str, Any]) -> Any:
    with scim_input():
        return SearchRequest.model_validate(params, scim_ctx=Context.SEARCH_REQUEST)


def _names(paths: list[Any] | None) -> set[str]:
    """The top-level attribute names of `attributes`/`excludedAttributes`, lower-cased."""
    names = set()
    for path in paths or []:
        text = str(path).lower()
        if text.startswith(GROUP_URN.lower() + ":"):
            text = text[len(GROUP_URN) + 1 :]
        names.add(text.split(".")[0])
    return names


def wants_members(search: Any) -> bool:
    if search.attributes:
        return "members" in _names(search.attributes)
    return "members" not in _names(search.excluded_attributes)


async def _answer(
    session: AsyncSession, request: Request, role: Role, search: Any, status: int = 200
) -> JSONResponse:
    base = base_url(request)
    members = None
    if wants_members(search):
        members = (await scim_queries.group_members(session, [role.id]))[role.id]
    body = to_scim(role, base, members).model_dump(
        scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=search
    )
    headers = {"ETag": group_etag(role)}
    if status == 201:
        headers["Location"] = f"{base}/Groups/{role.public_id}"
    return scim_response(body, status, headers)


async def _group_for_update(session: AsyncSession, request: Request, group_id: str) -> Role:
    """The group a write changes, checked against If-Match. The workspace is locked first:
    the lock order of every action (workspace, users, roles) that the writes then keep, and
    one SCIM group write at a time."""
    await lock_workspace(session)
    role = await session.scalar(
        select(Role).where(Role.public_id == group_id).execution_options(populate_existing=True)
    )
    if role is None:
        raise NotFound(f"no group with id {group_id}")
    check_if_match(request, group_etag(role))
    return role


# --- what a request asks for ------------------------------------------------------------------


def _member_id(entry: Any) -> str:
    """A member as providers send one: {"value": id} (with $ref, type or display beside
    it), or the bare id."""
    if isinstance(entry, str) and entry:
        return entry
    if isinstance(entry, dict):
        if str(entry.get("type") or "User").lower() != "user":
            raise InvalidInput.one("members.type", "invalidValue", "a member is a User")
        value = entry.get("value")
        if isinstance(value, str) and value:
            return value
        ref = entry.get("$ref")
        if isinstance(ref, str) and "/Users/" in ref:
            return ref.rstrip("/").rsplit("/", 1)[-1]
    raise InvalidInput.one("members.value", "invalidValue", "a member needs a user's id as value")


def _member_ids(value: Any) -> list[str]:
    if value is None:
        return []
    entries = value if isinstance(value, list) else [value]
    return [_member_id(entry) for entry in entries]


@dataclass
class Changes:
    """What a PUT or PATCH makes of a group: its attributes, and its members as a delta
    (or, after a replacement of them all, as a set)."""

    attributes: dict[str, Any] = field(default_factory=dict)
    members: set[str] | None = None  # every member, when replaced
    add: set[str] = field(default_factory=set)
    remove: set[str] = field(default_factory=set)

    def add_members(self, ids: list[str]) -> None:
        self.remove.difference_update(ids)
        self.add.update(ids)

    def remove_members(self, ids: list[str]) -> None:
        self.add.difference_update(ids)
        self.remove.update(ids)

    def replace_members(self, ids: list[str]) -> None:
        self.members, self.add, self.remove = set(ids), set(), set()

    def count(self) -> int:
        return len(self.members or ()) + len(self.add) + len(self.remove)


def _without_schema(path: str) -> str:
    text = path.strip()
    if text.lower().startswith(GROUP_URN.lower() + ":"):
        text = text[len(GROUP_URN) + 1 :]
    return text


def _attribute(path: str) -> str:
    """A path or path-less key as providers spell it ("displayName", "DisplayName",
    "urn:...:Group:displayName"), lower-cased, without the schema."""
    return _without_schema(path).lower()


def _text(name: str, value: Any, *, required: bool) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    if value is None or value == "" or value == []:
        if required:
            raise InvalidInput.one(name, "invalidValue", "a group needs a displayName")
        return None
    raise InvalidInput.one(name, "invalidValue", "must be a string")


_READ_ONLY = frozenset({"id", "schemas", "meta"})


def _apply_to(changes: Changes, op: str, attr: str, value: Any, *, has_value: bool) -> None:
    """One operation on one attribute (attr as _attribute gives it). Read-only attributes
    are skipped, not refused: Okta sends the group's id beside its displayName."""
    if attr in _READ_ONLY:
        return
    if attr == "displayname":
        if op == "remove":
            raise InvalidInput.one("displayName", "mutability", "a group needs a displayName")
        changes.attributes["display_name"] = _text("displayName", value, required=True)
    elif attr == "externalid":
        changes.attributes["external_id"] = (
            None if op == "remove" else _text("externalId", value, required=False)
        )
    elif attr == "members":
        if op == "add":
            changes.add_members(_member_ids(value))
        elif op == "replace":
            changes.replace_members(_member_ids(value))
        elif has_value:  # Okta, and Entra under remove_value_as_filter: these members
            changes.remove_members(_member_ids(value))
        else:
            changes.replace_members([])
    else:
        raise InvalidInput.one(
            "path", "invalidPath", f"unknown or unsupported attribute {attr!r} of a Group"
        )


_FILTERED = re.compile(r"^\s*members\s*\[(?P<filter>.*)\]\s*$", re.IGNORECASE | re.DOTALL)


def _filtered_ids(node: FilterNode) -> list[str]:
    """The ids a members[...] filter names: `value eq "id"`, joined with `or`."""
    if isinstance(node, LogicalExpr) and node.op is LogicalOperator.or_:
        return [i for term in node.terms for i in _filtered_ids(term)]
    if (
        isinstance(node, Comparison)
        and isinstance(node.attr_path, AttrPath)
        and node.attr_path.attr.lower() == "value"
        and node.attr_path.sub_attr is None
        and node.op is CompareOperator.eq
        and isinstance(node.value, str)
    ):
        return [node.value]
    raise InvalidInput.one(
        "path",
        "invalidFilter",
        'members can be selected by value only: members[value eq "<id>"] (joined with or)',
    )


def patch_changes(body: dict[str, Any]) -> Changes:
    """What a PatchOp asks, read as providers send it: operation names in any case, paths
    with or without the schema, path-less values, members by a value filter or a list."""
    schemas = body.get("schemas")
    if schemas is not None and PATCH_URN not in (schemas if isinstance(schemas, list) else []):
        raise InvalidInput.one("schemas", "invalidSyntax", f"must be [{PATCH_URN!r}]")
    operations = body.get("Operations")
    if not isinstance(operations, list) or not operations:
        raise InvalidInput.one("Operations", "invalidSyntax", "must be a list of operations")
    changes = Changes()
    for operation in operations:
        if not isinstance(operation, dict):
            raise InvalidInput.one("Operations", "invalidSyntax", "must be a list of objects")
        op = str(operation.get("op", "")).lower()
        if op not in ("add", "replace", "remove"):
            raise InvalidInput.one("op", "invalidSyntax", "must be add, replace or remove")
        path, value = operation.get("path"), operation.get("value")
        has_value = "value" in operation and value is not None
        if path is None or path == "":
            if op == "remove":
                raise InvalidInput.one("path", "noTarget", "a remove operation needs a path")
            if not isinstance(value, dict):
                raise InvalidInput.one(
                    "value", "invalidValue", "an operation without a path needs an object"
                )
            for key, item in value.items():
                _apply_to(changes, op, _attribute(str(key)), item, has_value=True)
            continue
        if not isinstance(path, str):
            raise InvalidInput.one("path", "invalidPath", "must be a string")
        filtered = _FILTERED.match(_without_schema(path))  # the ids keep their case
        if filtered is not None:
            if op != "remove":
                raise InvalidInput.one(
                    "path", "invalidPath", "members[...] paths are supported for remove only"
                )
            try:
                ast = ScimFilter(filtered["filter"]).ast
            except (SCIMException, ValueError) as exc:
                raise InvalidInput.one("path", "invalidFilter", str(exc)) from None
            changes.remove_members(_filtered_ids(ast))
            continue
        _apply_to(changes, op, _attribute(path), value, has_value=has_value)
    if changes.count() > MAX_MEMBER_CHANGES:
        raise too_many(changes.count())
    return changes


def _resource(body: dict[str, Any], context: Context) -> Group:
    with scim_input():
        return Group.model_validate(body, scim_ctx=context)


def _resource_members(body: dict[str, Any]) -> list[str]:
    """The members a PUT or POST lists: a whole group, so more than the changes one request
    may make (those are counted once known), but not without end."""
    members = _member_ids(body.get("members"))
    if len(members) > MAX_MEMBERS_LISTED:
        raise InvalidInput.one(
            "members", "tooMany", f"at most {MAX_MEMBERS_LISTED} members in one request"
        )
    return members


# --- applying them through the actions -----------------------------------------------------


async def _change_members(
    session: AsyncSession, actor: Actor, role: Role, changes: Changes
) -> None:
    """Grant and take the role, each through its action (so each user's rules and audit
    entry hold), reading only the users named (or, after a replacement of them all, the
    holders' ids)."""
    add, remove = set(changes.add), set(changes.remove)
    if changes.members is not None:
        current = set((await scim_queries.group_members(session, [role.id]))[role.id])
        wanted = (changes.members | add) - remove
        add, remove = wanted - current, current - wanted
    unknown = add - await scim_queries.users_among(session, sorted(add))
    if unknown:
        raise InvalidInput.one(
            "members.value", "invalidValue", f"no user with id {', '.join(sorted(unknown))}"
        )
    held = await scim_queries.users_among(session, sorted(add | remove), holding=role.id)
    gaining, losing = add - held, remove & held
    # The real work, counted after a replacement or a removal of them all too.
    if len(gaining) + len(losing) > MAX_MEMBER_CHANGES:
        raise too_many(len(gaining) + len(losing))
    await lock_users(session, gaining | losing)
    await lock_roles_changing_hands(
        session, role_actions.roles_moved_with(role, losing=bool(losing))
    )
    for user_id in sorted(gaining):
        await user_actions.grant_role(session, actor=actor, user_id=user_id, role=role.name)
    for user_id in sorted(losing):
        await user_actions.revoke_role(session, actor=actor, user_id=user_id, role=role.name)


async def _apply(session: AsyncSession, actor: Actor, role: Role, changes: Changes) -> None:
    """Members first (users, then the role, in the actions' lock order), then the role."""
    await _change_members(session, actor, role, changes)
    attributes = {
        key: value for key, value in changes.attributes.items() if value != getattr(role, key)
    }
    if attributes:
        await role_actions.update_role(
            session, actor=actor, name=role.name, data=RoleUpdate.model_validate(attributes)
        )


# --- routes ----------------------------------------------------------------------------------


async def _listing(
    request: Request, database: Database, actor: Actor, params: dict[str, Any]
) -> JSONResponse:
    condition = list_filter(params.pop("filter", None), scim_queries.group_filter)
    search = _search(params)
    path = sort_path(search)
    order = scim_queries.group_sort_column(path) if path is not None else None
    start, count, descending = page_of(search)
    async with database.reader() as session:
        found = await scim_queries.search_groups(
            session,
            viewer=actor,
            condition=condition,
            order=order,
            descending=descending,
            start=start - 1,
            count=count,
        )
        ids = [role.id for role in found.groups]
        members = await scim_queries.group_members(session, ids) if wants_members(search) else {}
    base = base_url(request)
    resources = [
        to_scim(role, base, members.get(role.id)).model_dump(
            scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=search
        )
        for role in found.groups
    ]
    return list_response(resources, total=found.total, start=start)


@router.get("")
async def list_groups(request: Request, actor: ScimActor, database: DatabaseDep) -> JSONResponse:
    return await _listing(request, database, actor, dict(request.query_params))


@router.post("/.search")
async def search_groups(request: Request, actor: ScimActor, database: DatabaseDep) -> JSONResponse:
    body = await json_body(request)
    body.pop("schemas", None)
    return await _listing(request, database, actor, body)


@router.post("")
async def create_group(request: Request, actor: ScimActor, database: DatabaseDep) -> JSONResponse:
    actor.require(Permission.ROLES_MANAGE)
    body = await json_body(request)
    resource = _resource(body, Context.RESOURCE_CREATION_REQUEST)
    display_name = _text("displayName", resource.display_name, required=True)
    changes = Changes()
    changes.add_members(_resource_members(body))
    data = RoleCreate(
        display_name=display_name,
        external_id=_text("externalId", resource.external_id, required=False),
    )
    async with database.transaction() as session:
        await lock_workspace(session)
        role = await role_actions.create_role(session, actor=actor, data=data)
        await _change_members(session, actor, role, changes)
        return await _answer(session, request, role, _search({}), status=201)


@router.get("/{group_id}")
async def get_group(
    group_id: str, request: Request, actor: ScimActor, database: DatabaseDep
) -> Response:
    search = _search(dict(request.query_params))
    async with database.reader() as session:
        role = await scim_queries.get_group(session, viewer=actor, group_id=group_id)
        tag = group_etag(role)
        if tag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
            return Response(status_code=304, headers={"ETag": tag})
        return await _answer(session, request, role, search)


@router.put("/{group_id}")
async def replace_group(
    group_id: str, request: Request, actor: ScimActor, database: DatabaseDep
) -> JSONResponse:
    body = await json_body(request)
    resource = _resource(body, Context.RESOURCE_REPLACEMENT_REQUEST)
    changes = Changes(
        attributes={
            "display_name": _text("displayName", resource.display_name, required=True),
            "external_id": _text("externalId", resource.external_id, required=False),
        }
    )
    changes.replace_members(_resource_members(body))
    search = _search(dict(request.query_params))
    async with database.transaction() as session:
        role = await _group_for_update(session, request, group_id)
        await _apply(session, actor, role, changes)
        await session.refresh(role)
        return await _answer(session, request, role, search)


@router.patch("/{group_id}")
async def patch_group(
    group_id: str, request: Request, actor: ScimActor, database: DatabaseDep
) -> Response:
    changes = patch_changes(await json_body(request))
    params = dict(request.query_params)
    search = _search(params)
    async with database.transaction() as session:
        role = await _group_for_update(session, request, group_id)
        await _apply(session, actor, role, changes)
        await session.refresh(role)
        if "attributes" in params or "excludedAttributes" in params:
            return await _answer(session, request, role, search)
        # RFC 7644 §3.5.2: 204 rather than every member of a large group, each time.
        return Response(status_code=204, headers={"ETag": group_etag(role)})


@router.delete("/{group_id}", status_code=204)
async def delete_group(
    group_id: str, request: Request, actor: ScimActor, database: DatabaseDep
) -> Response:
    async with database.transaction() as session:
        role = await _group_for_update(session, request, group_id)
        await role_actions.delete_role_taking_it_from_holders(session, actor=actor, name=role.name)
    return Response(status_code=204)
