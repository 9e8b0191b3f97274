"""Rocket.Chat's REST conventions: which requests are its, its authentication headers, its
bodies and its error answers, and the shapes in which it shows users and roles."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Match
from starlette.types import Scope

from userdesk.actions.context import Actor
from userdesk.errors import (
    DomainError,
    Duplicate,
    InvalidInput,
    InvitationInvalid,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
    Unauthenticated,
)
from userdesk.http.deps import DatabaseDep, actor_by_session, actor_by_token
from userdesk.models import Role, User, UserStatus, UserType
from userdesk.queries import rocketchat as rc_queries
from userdesk.security.randomness import SESSION_PREFIX

API = "/api/v1/"
# Its methods without a dot; every other one has one (users.create), and no native route
# has a dot in the segment after /api/v1/.
UNDOTTED = frozenset(
    {
        "login",
        "logout",
        "findOrCreateInvite",
        "listInvites",
        "removeInvite",
        "validateInviteToken",
        "useInviteToken",
    }
)
AUTH_HEADERS = (b"x-auth-token", b"x-user-id")


def is_rocketchat_request(request: Request) -> bool:
    """Whether the request is to the Rocket.Chat API (its errors answer in its format)."""
    path = request.url.path
    if path.startswith("/avatar/"):
        return True
    if not path.startswith(API):
        return False
    method = path[len(API) :].split("/", 1)[0]
    if method == "me":
        return (
            path.rstrip("/") == API + "me"
            and request.method in ("GET", "HEAD")
            and _carries_token(request.headers.raw)
        )
    return "." in method or method in UNDOTTED


class WithAuthHeaders(APIRoute):
    """A route that matches only requests carrying Rocket.Chat's X-Auth-Token header: the
    one path both APIs have, GET /api/v1/me, goes to Rocket.Chat's handler with the header
    and to the native one without it."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and not _carries_token(scope["headers"]):
            return Match.NONE, {}
        return match, child


def _carries_token(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k == b"x-auth-token" and v.strip() for k, v in headers)


class RocketChatError(DomainError):
    """A refusal Rocket.Chat answers with its own error type (error-invalid-user...)."""

    code = "rocketchat_error"

    def __init__(
        self,
        error_type: str | None,
        message: str,
        *,
        status: int = 400,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status = status
        self.details = details


# userdesk's input fields by the names Rocket.Chat's clients use for them.
FIELD_NAMES = {
    "status_message": "statusText",
    "email_verified": "verified",
    "require_password_change": "requirePasswordChange",
    "send_welcome_email": "sendWelcomeEmail",
    "avatar_url": "avatarUrl",
    "login": "user",
    "expires_in_days": "days",
    "max_uses": "maxUses",
}
# Rocket.Chat's error types for refused query, sort and fields parameters.
_PARAMETER_ERRORS = {
    "query": "error-invalid-query",
    "sort": "error-invalid-sort",
    "fields": "error-invalid-fields",
}


def failure(
    status: int,
    error: str,
    error_type: str | None = None,
    *,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"success": False}
    if error_type is not None:
        body["error"] = f"{error} [{error_type}]"
        body["errorType"] = error_type
    else:
        body["error"] = error
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def unauthorized(message: str = "You must be logged in to do this.") -> JSONResponse:
    return JSONResponse(
        {"success": False, "status": "error", "error": "unauthorized", "message": message},
        status_code=401,
    )


class RocketChatErrors:
    """Domain errors as Rocket.Chat answers them: 400 with an errorType, 401, 403."""

    def domain(self, exc: DomainError) -> Response:
        if isinstance(exc, RocketChatError):
            return failure(exc.status, exc.message, exc.error_type, details=exc.details)
        if isinstance(exc, Unauthenticated):
            return unauthorized()
        if isinstance(exc, PermissionDenied):
            details = {"reason": exc.message}
            if exc.permission:
                details["permission"] = exc.permission
            return failure(
                403,
                "User does not have the permissions required for this action",
                "error-unauthorized",
                details=details,
            )
        if isinstance(exc, TooManyAttempts):
            return failure(
                429,
                "Error, too many requests. Please slow down. You must wait "
                f"{exc.retry_after} seconds before trying this endpoint again.",
                "error-too-many-requests",
                headers={"Retry-After": str(exc.retry_after)},
            )
        if isinstance(exc, InvalidInput):
            errors = [
                {"field": FIELD_NAMES.get(e.field, e.field), "code": e.code, "message": e.message}
                for e in exc.errors
            ]
            error_type = next(
                (_PARAMETER_ERRORS[e.field] for e in exc.errors if e.field in _PARAMETER_ERRORS),
                "invalid-params",
            )
            text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            return failure(400, text, error_type, details={"errors": errors})
        if isinstance(exc, Duplicate):
            field = FIELD_NAMES.get(exc.field or "", exc.field)
            return failure(400, exc.message, "error-field-unavailable", details={"field": field})
        if isinstance(exc, NotFound):
            return failure(400, exc.message, "error-not-found")
        if isinstance(exc, InvitationInvalid):
            error_type = (
                "error-invite-expired" if exc.reason == "expired" else "error-invalid-token"
            )
            return failure(400, exc.message, error_type)
        return failure(400, exc.message, "error-action-not-allowed", details={"code": exc.code})

    def http(self, status: int, detail: str, headers: Mapping[str, str] | None) -> Response:
        return JSONResponse(
            {"success": False, "status": "error", "error": detail, "message": detail},
            status_code=status,
            headers=headers,
        )


async def rocketchat_actor(request: Request, database: DatabaseDep) -> Actor:
    """The caller by X-Auth-Token (a token from `login`, or a personal access token) and
    X-User-Id, which must name the token's user."""
    token = request.headers.get("x-auth-token", "").strip()
    user_id = request.headers.get("x-user-id", "").strip()
    if not token or not user_id:
        raise Unauthenticated("send X-Auth-Token and X-User-Id")
    if token.startswith(SESSION_PREFIX):
        actor = await actor_by_session(request, database, token)
    else:
        actor = await actor_by_token(request, database, token)
    if actor is None or actor.public_id != user_id:
        raise Unauthenticated("the token is unknown or has ended, or is not X-User-Id's")
    return actor


RocketChatActor = Annotated[Actor, Depends(rocketchat_actor)]


async def body_of(request: Request) -> dict[str, Any]:
    """A POST's parameters: its JSON object, or its form fields (files included)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()
        return dict(form.items())
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidInput.one("body", "invalid_json", "is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput.one("body", "invalid_json", "must be a JSON object")
    _refuse_nul(body, "body")
    return body


def _refuse_nul(value: Any, name: str) -> None:
    """No string anywhere in a parameter holds a NUL character (PostgreSQL cannot store or
    compare one; no name, address or token needs one). Checked iteratively: a deeply
    nested document costs no recursion."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise InvalidInput.one(name, "nul_character", "must not contain NUL characters")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def json_parameter(request: Request, name: str) -> Any:
    """A GET parameter holding JSON (query, sort, fields), or None when left out."""
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidInput.one(name, f"invalid_{name}", "is not JSON") from None
    _refuse_nul(value, name)
    return value


def integer_parameter(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput.one(name, "integer", "must be a whole number") from None
    if value < 0 or value > 10**9:
        raise InvalidInput.one(name, "range", "must be between 0 and 1000000000")
    return value


def flag(value: Any, name: str) -> bool | None:
    """A boolean as clients send it: true, "true", "True", 1 (None when left out)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise InvalidInput.one(name, "boolean", "must be true or false")


def text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput.one(name, "string", "must be a string")
    _refuse_nul(value, name)
    return value


# users.list and roles.getUsersInRole: Rocket.Chat's default page and its cap.
DEFAULT_COUNT = 50
MAX_COUNT = 100


def page_of(request: Request) -> tuple[int, int]:
    offset = integer_parameter(request, "offset", 0)
    count = integer_parameter(request, "count", DEFAULT_COUNT)
    return offset, min(count or DEFAULT_COUNT, MAX_COUNT)


async def named_user(
    session: AsyncSession,
    actor: Actor,
    params: Any,
    *,
    own_by_default: bool = False,
    error_type: str | None = "error-invalid-user",
) -> User:
    """The user a request names by userId, username (or email), or the caller."""
    user_id = text(params.get("userId"), "userId")
    username = text(params.get("username"), "username")
    email = text(params.get("email"), "email")
    if not (user_id or username or email):
        if not own_by_default:
            raise RocketChatError(
                "error-user-param-not-provided",
                'The required "userId" or "username" param was not provided',
            )
        user_id = actor.public_id
    try:
        return await rc_queries.find_user(
            session, viewer=actor, user_id=user_id, username=username, email=email
        )
    except NotFound:
        raise RocketChatError(
            error_type, "User not found." if error_type is None else "Invalid user"
        ) from None


def iso(value: datetime | None) -> str | None:
    """Rocket.Chat's dates: ISO 8601 in UTC, to the millisecond, with a Z."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_offset(user: User) -> float | None:
    if not user.timezone:
        return None
    try:
        offset = datetime.now(ZoneInfo(user.timezone)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return offset.total_seconds() / 3600 if offset is not None else None


def avatar_etag(user: User) -> str | None:
    return f"{user.public_id[:8]}{int(user.updated_at.timestamp())}" if user.avatar_url else None


def user_shape(user: User, *, online: bool = False) -> dict[str, Any]:
    """A user as Rocket.Chat's users.info, users.list and users.create show one. `active` is
    false only for deactivated users (a pending user may sign in); `status` is presence."""
    shape: dict[str, Any] = {
        "_id": user.public_id,
        "createdAt": iso(user.created_at),
        "_updatedAt": iso(user.updated_at),
        "username": user.username,
        "emails": [{"address": user.email, "verified": user.email_verified}],
        "type": "bot" if user.type is UserType.BOT else "user",
        "status": "online" if online else "offline",
        "active": user.status is not UserStatus.DEACTIVATED,
        "roles": sorted(role.name for role in user.roles),
        "name": user.name,
        "nameInsensitive": user.name.casefold(),
        "requirePasswordChange": user.require_password_change,
        "settings": {},
    }
    optional = {
        "nickname": user.nickname,
        "bio": user.bio,
        "statusText": user.status_message,
        "lastLogin": iso(user.last_login_at),
        "utcOffset": utc_offset(user),
        "avatarETag": avatar_etag(user),
    }
    shape.update({k: v for k, v in optional.items() if v is not None})
    return shape


def me_shape(user: User) -> dict[str, Any]:
    """The signed-in user as Rocket.Chat's /me shows them."""
    shape = user_shape(user, online=True)
    if user.email_verified:
        shape["email"] = user.email
    shape["services"] = {
        "password": {"exists": user.password_hash is not None},
        "totp": {"enabled": user.totp_enabled_at is not None},
    }
    shape["settings"] = {"profile": {}, "preferences": {}}
    shape["avatarUrl"] = f"/avatar/{user.username}"
    return shape


def role_shape(role: Role, *, two_factor: bool) -> dict[str, Any]:
    """Rocket.Chat names its built-in roles' ids by their names; userdesk's ids are names."""
    return {
        "_id": role.name,
        "name": role.name,
        "scope": "Users",
        "description": role.description,
        "protected": role.built_in,
        "mandatory2fa": two_factor,
        "_updatedAt": iso(role.updated_at),
    }


def ok(**data: Any) -> dict[str, Any]:
    return {**data, "success": True}
