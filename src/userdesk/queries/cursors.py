"""Opaque keyset cursors: a small JSON document, base64url-encoded, checked on the way back.

A cursor is client input: anything that is not exactly what we issued is refused as 422
before it can reach SQL (where an out-of-range id or a NUL character would be a 500).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Select

from userdesk.errors import InvalidInput

MAX_ROW_ID = 2**63 - 1  # BIGINT
T = TypeVar("T")
Q = TypeVar("Q", bound=Select)


def invalid() -> InvalidInput:
    return InvalidInput.one("cursor", "invalid_cursor", "is not a cursor from this listing")


def encode(listing: str, value: str | None, row_id: int) -> str:
    raw = json.dumps({"s": listing, "v": value, "i": row_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, listing: str, *, with_value: bool) -> tuple[str | None, int]:
    """(value, row id) of a cursor issued for `listing`, or InvalidInput."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        value, row_id = raw["v"], raw["i"]
        if raw["s"] != listing:
            raise invalid()
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid() from None
    if not isinstance(row_id, int) or isinstance(row_id, bool) or not 0 < row_id <= MAX_ROW_ID:
        raise invalid()
    if with_value and (not isinstance(value, str) or "\x00" in value):
        raise invalid()
    if not with_value and value is not None:
        raise invalid()
    return value, row_id


def describe(value: Any) -> str:
    """A sort value as the cursor carries it."""
    return value.isoformat() if hasattr(value, "isoformat") else str(getattr(value, "value", value))


def newest_first(query: Q, id_column: Any, *, listing: str, cursor: str | None, limit: int) -> Q:
    """Page a listing by id, newest first: start after the cursor's row, and fetch one row
    more than asked to learn whether another page follows (see `cut`)."""
    query = query.order_by(id_column.desc()).limit(limit + 1)
    if cursor:
        query = query.where(id_column < decode(cursor, listing, with_value=False)[1])
    return query


def cut(
    rows: list[T], *, limit: int, listing: str, row_id: Callable[[T], int]
) -> tuple[list[T], str | None]:
    """The page of a `newest_first` query's rows, and the cursor of the next one (or None)."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode(listing, None, row_id(page[-1]))
