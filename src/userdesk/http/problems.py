"""Domain errors and bad requests as problem+json (RFC 9457), mapped in this one place."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from userdesk.actions.reauth import note_wrong_password
from userdesk.errors import (
    Conflict,
    DomainError,
    FieldError,
    InvalidInput,
    InvitationInvalid,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    TooManyAttempts,
    Unauthenticated,
    WrongPassword,
)
from userdesk.security.sealing import SealingError

log = logging.getLogger("userdesk.http")

PROBLEM_JSON = "application/problem+json"

_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (InvalidInput, 422),
    (NotFound, 404),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (Conflict, 409),
    (TooManyAttempts, 429),
    (InvitationInvalid, 410),
    (PreconditionFailed, 412),
)

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many attempts",
    500: "Internal error",
    503: "Service unavailable",
}


class ProblemFieldError(BaseModel):
    field: str
    code: str
    message: str


class Problem(BaseModel):
    """The body of every error answer (RFC 9457), for the OpenAPI document."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    errors: list[ProblemFieldError] | None = None
    permission: str | None = None
    field: str | None = None
    retry_after: int | None = None


def problem_responses() -> dict[int | str, dict[str, Any]]:
    """The error answers every API route may give, documented as problem+json."""
    return {
        status: {
            "model": Problem,
            "description": _TITLES[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in (401, 403, 404, 409, 413, 422, 429)
    }


def problem(
    status: int, code: str, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": f"urn:userdesk:problem:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(errors: list[FieldError]) -> list[dict[str, str]]:
    return [{"field": e.field, "code": e.code, "message": e.message} for e in errors]


def domain_problem(exc: DomainError) -> JSONResponse:
    status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 400)
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInput):
        extra["errors"] = _field_errors(exc.errors)
    if isinstance(exc, PermissionDenied) and exc.permission:
        extra["permission"] = exc.permission
    if isinstance(exc, Conflict) and exc.field:
        extra["field"] = exc.field
    headers: dict[str, str] | None = None
    if isinstance(exc, TooManyAttempts):
        extra["retry_after"] = exc.retry_after
        headers = {"Retry-After": str(exc.retry_after)}
    return problem(status, exc.code, exc.message, headers=headers, **extra)


class ErrorFormat(Protocol):
    """How a protocol mounted under a path prefix (SCIM, the Rocket.Chat API) answers
    errors in its own format: domain errors, HTTP errors (404, 405) and the unexpected."""

    def domain(self, exc: DomainError) -> Response: ...

    def http(self, status: int, detail: str, headers: Mapping[str, str] | None) -> Response: ...


def register_format(
    app: FastAPI, applies: str | Callable[[Request], bool], error_format: ErrorFormat
) -> None:
    """Answer errors of the requests `applies` to (a path prefix, or a test of the request)
    in `error_format`. The first registered format that applies is used."""
    test = applies if callable(applies) else _under(applies)
    formats = getattr(app.state, "error_formats", [])
    app.state.error_formats = [*formats, (test, error_format)]


def _under(prefix: str) -> Callable[[Request], bool]:
    return lambda request: request.url.path.startswith(prefix)


def format_for(request: Request) -> ErrorFormat | None:
    formats = getattr(request.app.state, "error_formats", [])
    return next((f for applies, f in formats if applies(request)), None)


def _domain_answer(request: Request, exc: DomainError) -> Response:
    error_format = format_for(request)
    return error_format.domain(exc) if error_format else domain_problem(exc)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def on_domain_error(request: Request, exc: DomainError) -> Response:
        return _domain_answer(request, exc)

    @app.exception_handler(WrongPassword)
    async def on_wrong_password(request: Request, exc: WrongPassword) -> Response:
        # The action's transaction rolled back; the failure is counted in one of its own.
        database = request.app.state.database
        async with database.transaction() as session:
            await note_wrong_password(
                session,
                user_id=exc.user_id,
                ip=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
            )
        return _domain_answer(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_request_invalid(request: Request, exc: RequestValidationError) -> Response:
        return _domain_answer(request, InvalidInput.from_pydantic(exc.errors(), drop_location=True))

    @app.exception_handler(ValidationError)
    async def on_model_invalid(request: Request, exc: ValidationError) -> Response:
        return _domain_answer(
            request, InvalidInput.from_pydantic(exc.errors(), drop_location=False)
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot even decode (bytes that are not UTF-8).
            return _domain_answer(
                request, InvalidInput.one("body", "body_unreadable", "is not UTF-8 encoded JSON")
            )
        error_format = format_for(request)
        if error_format is not None:
            return error_format.http(exc.status_code, str(exc.detail), exc.headers)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(SealingError)
    async def on_unsealable(_request: Request, exc: SealingError) -> JSONResponse:
        # The operator's problem, not the caller's: say so plainly, and log it loudly.
        log.error("cannot open a sealed secret: %s", exc)
        return problem(
            503,
            "secret_key_mismatch",
            "the server cannot read its stored secrets with its current key "
            "(USERDESK_SECRET_KEY or the key file changed); an operator must restore it",
        )

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        error_format = format_for(request)
        if error_format is not None:
            return error_format.http(500, "something went wrong on our side; it was logged", None)
        return problem(500, "internal_error", "something went wrong on our side; it was logged")
