"""Refuse, before anything parses them, request bodies over the configured size and
NUL characters in the path or query (PostgreSQL cannot store them; they are never valid)."""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from userdesk.errors import InvalidInput
from userdesk.http.problems import ErrorFormat, format_for


def _problem(status: int, code: str, title: str, detail: str, **extra: object) -> bytes:
    body = {
        "type": f"urn:userdesk:problem:{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    return json.dumps(body).encode()


async def _answer(send: Send, status: int, body: bytes, *, close: bool = False) -> None:
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


DRAIN_LIMIT = 64 * 1024 * 1024  # beyond this, a refused body is not read any further


class RequestLimits:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"\x00" in unquote_to_bytes(scope["query_string"]):
            field = "path" if "\x00" in scope["path"] else "query"
            rule = "must not contain NUL characters"
            error_format = _format_of(scope)
            if error_format is not None:
                refusal = InvalidInput.one(field, "nul_character", rule)
                await error_format.domain(refusal)(scope, receive, send)
                return
            await _answer(
                send,
                422,
                _problem(
                    422,
                    "invalid_input",
                    "Invalid input",
                    f"{field}: {rule}",
                    errors=[{"field": field, "code": "nul_character", "message": rule}],
                ),
            )
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._too_large(scope, receive, send)
            return
        # Read the whole body (at most max_body_bytes) up front, so a chunked body that runs
        # over is a 413 too, then hand it to the application as one message.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending the whole body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay(whole, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 and close the connection. The unread rest of the body is read and
        dropped first (up to DRAIN_LIMIT), so a client still sending it gets the answer
        instead of a reset connection, and no leftover bytes are taken for a next request."""
        drained = 0
        while drained <= DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        detail = f"request bodies are limited to {self.max_body_bytes} bytes"
        error_format = _format_of(scope)
        if error_format is not None:
            await error_format.http(413, detail, {"connection": "close"})(scope, receive, send)
            return
        await _answer(
            send,
            413,
            _problem(413, "body_too_large", "Request body too large", detail),
            close=True,
        )


def _format_of(scope: Scope) -> ErrorFormat | None:
    """The error format of the protocol the request is for (SCIM, Rocket.Chat), if any."""
    return format_for(Request(scope)) if "app" in scope else None


def _replay(first: Message, receive: Receive) -> Receive:
    sent = False

    async def replaying() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replaying
