"""What every SCIM route shares: the bearer token, the media type, request bodies, ETags
and errors in the SCIM error schema (RFC 7644 §3.12)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from scim2_models import SCIMException, ScimFilter, ScimPolicy
from scim2_models.path.expressions import AttrPath, FilterNode

from userdesk.actions.context import Actor
from userdesk.errors import (
    BuiltInRole,
    Conflict,
    DomainError,
    Duplicate,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    TooManyAttempts,
    Unauthenticated,
)
from userdesk.http.deps import DatabaseDep, current_actor
from userdesk.queries.scim import DEFAULT_COUNT, MAX_COUNT
from userdesk.security.permissions import Permission

PREFIX = "/scim/v2"
SCIM_JSON = "application/scim+json"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"

# userdesk's field names, as SCIM calls them, so an error names the attribute sent.
SCIM_NAMES = {
    "username": "userName",
    "email": "emails.value",
    "email_type": "emails.type",
    "email_primary": "emails.primary",
    "name": "displayName",
    "formatted_name": "name.formatted",
    "given_name": "name.givenName",
    "family_name": "name.familyName",
    "nickname": "nickName",
    "employment_type": "userType",
    "avatar_url": "photos.value",
    "external_id": "externalId",
    "display_name": "displayName",
    "employee_number": "employeeNumber",
    "manager": "manager.value",
}

_STATUS: tuple[tuple[type[DomainError], int, str | None], ...] = (
    (Duplicate, 409, "uniqueness"),
    (BuiltInRole, 400, "mutability"),
    (InvalidInput, 400, "invalidValue"),
    (NotFound, 404, None),
    (Unauthenticated, 401, None),
    (PermissionDenied, 403, None),
    (PreconditionFailed, 412, None),
    (Conflict, 409, None),
    (TooManyAttempts, 429, None),
)
# scimType values an InvalidInput may carry as its code (from the filter translation).
_SCIM_TYPES = {
    "invalidFilter",
    "invalidPath",
    "invalidSyntax",
    "invalidValue",
    "noTarget",
    "tooMany",
}


def scim_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=SCIM_JSON, headers=headers)


def scim_error(
    status: int,
    detail: str,
    scim_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="userdesk SCIM"'}
    return scim_response(body, status, headers)


def _field(name: str) -> str:
    return SCIM_NAMES.get(name, name)


class ScimErrors:
    """The SCIM error format, registered for everything under /scim/v2."""

    def domain(self, exc: DomainError) -> Response:
        status, scim_type = next(
            ((s, t) for cls, s, t in _STATUS if isinstance(exc, cls)), (400, None)
        )
        detail = exc.message
        if isinstance(exc, InvalidInput):
            detail = "; ".join(f"{_field(e.field)}: {e.message}" for e in exc.errors) or detail
            codes = {e.code for e in exc.errors} & _SCIM_TYPES
            scim_type = codes.pop() if len(codes) == 1 else scim_type
        elif isinstance(exc, Conflict) and exc.field:
            detail = f"{_field(exc.field)}: {detail}"
        headers = None
        if isinstance(exc, TooManyAttempts):
            headers = {"Retry-After": str(exc.retry_after)}
        return scim_error(status, detail, scim_type, headers)

    def http(self, status: int, detail: str, headers: Mapping[str, str] | None) -> Response:
        if status == 404:
            detail = "no such SCIM endpoint or resource"
        elif status == 405:
            detail = "this endpoint does not take that method"
        return scim_error(status, detail, headers=headers)


def from_scim_exception(exc: SCIMException) -> InvalidInput:
    """scim2-models' own errors (a bad filter, path or PATCH target) as ours."""
    error = exc.to_error()
    return InvalidInput.one("request", error.scim_type or "invalidValue", error.detail or str(exc))


# What real identity providers send, read as they mean it: capitalised operation names,
# "True"/"False" strings, Entra's remove-by-value and add-through-a-filter.
POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)


@contextmanager
def scim_input() -> Iterator[None]:
    """Read what a provider sent under POLICY; scim2-models' own refusals (a bad path,
    filter or PATCH target) become ours. A refused body (pydantic's ValidationError) is
    mapped by the app's handler, naming the attribute and the rule."""
    with POLICY:
        try:
            yield
        except SCIMException as exc:
            raise from_scim_exception(exc) from None


async def scim_actor(request: Request, database: DatabaseDep) -> Actor:
    """The identity provider: a bearer token (never a session cookie) whose user may
    provision. What each request then does needs that action's own permission too."""
    if not request.headers.get("authorization"):
        raise Unauthenticated("send a personal access token as 'Authorization: Bearer <token>'")
    actor = await current_actor(request, database)
    actor.require(Permission.USERS_PROVISION)
    # A provider reads what it writes back (and would otherwise learn, from which error it
    # gets, what it may not read).
    actor.require(Permission.USERS_READ)
    return actor


ScimActor = Annotated[Actor, Depends(scim_actor)]


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, sent as application/scim+json or application/json."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput.one("body", "invalidSyntax", f"is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise InvalidInput.one("body", "invalidSyntax", "must be a JSON object")
    return body


def list_response(resources: list[dict[str, Any]], *, total: int, start: int = 1) -> JSONResponse:
    """A ListResponse (RFC 7644 §3.4.2): one page of `resources`, `total` matching in all."""
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
    }
    if resources:
        body["Resources"] = resources
    return scim_response(body)


def etag(version: str) -> str:
    return f'W/"{version}"'


def check_if_match(request: Request, current: str) -> None:
    """A write with If-Match is refused unless the resource is still the one the caller
    read (RFC 7644 §3.14; `*` matches any). `current` is the resource's ETag."""
    header = request.headers.get("if-match")
    if header is None:
        return
    tags = {tag.strip() for tag in header.split(",")}
    if "*" in tags:
        return
    if current not in tags and current.removeprefix("W/") not in tags:
        raise PreconditionFailed(
            f"the resource has changed: its version is {current}, the request's If-Match "
            f"is {header}"
        )


def list_filter(raw: Any, translate: Callable[[FilterNode], Any]) -> Any:
    """The SQL condition of a list's `filter` (None without one), parsed here rather than
    by SearchRequest, so an error says invalidFilter."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidInput.one("filter", "invalidFilter", "must be a string")
    try:
        return translate(ScimFilter(raw).ast)
    except SCIMException as exc:
        raise from_scim_exception(exc) from None
    except ValueError as exc:
        raise InvalidInput.one("filter", "invalidFilter", str(exc)) from None


def sort_path(search: Any) -> AttrPath | None:
    """A list's sortBy as a path (schema URN, attribute, sub-attribute)."""
    if not search.sort_by:
        return None
    path = str(search.sort_by)
    uri, _, attr = path.rpartition(":") if path.startswith("urn:") else ("", "", path)
    attr_name, _, sub = attr.partition(".")
    return AttrPath(attr_name, sub or None, uri or None)


def page_of(search: Any) -> tuple[int, int, bool]:
    """A list's 1-based startIndex, its count (at most MAX_COUNT), and whether it sorts
    descending."""
    start = max(int(search.start_index or 1), 1)
    count = DEFAULT_COUNT if search.count is None else int(search.count)
    descending = str(search.sort_order or "ascending").endswith("descending")
    return start, max(0, min(count, MAX_COUNT)), descending
