"""Substring search over users.search_text: the one place with dialect-specific SQL.

PostgreSQL answers LIKE '%q%' from the pg_trgm GIN index. SQLite answers it from the FTS5
trigram table users_search, which needs at least three characters and cannot take an ESCAPE
clause; shorter queries and queries containing LIKE wildcards use instr() on the column.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select, text

from userdesk.actions.inputs import fold
from userdesk.models import User

_LIKE_SPECIALS = ("%", "_", "\\")


def matches(dialect: str, query: str) -> ColumnElement[bool]:
    needle = fold(query)
    if dialect == "postgresql":
        return User.search_text.contains(needle, autoescape=True)
    if len(needle) >= 3 and not any(c in needle for c in _LIKE_SPECIALS):
        fts = (
            select(text("rowid"))
            .select_from(text("users_search"))
            .where(text("users_search.search_text LIKE :needle").bindparams(needle=f"%{needle}%"))
        )
        return User.id.in_(fts.scalar_subquery())
    return func.instr(User.search_text, needle) > 0
