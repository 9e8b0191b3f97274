"""Substring search over users.search_text: the one place with dialect-specific SQL.

PostgreSQL answers LIKE '%q%' from the pg_trgm GIN index when the query has three
characters or more (shorter ones give the index no trigram to look up). SQLite answers it
from the FTS5 trigram table users_search, which needs at least three characters and cannot
take an ESCAPE clause; shorter queries and queries containing LIKE wildcards use instr() on
the column.

`matches` is the form that finds the matching rows through those indexes; `contains` tests
one row's text (as a filter while walking an index in sort order, or over a sample).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select, text

from userdesk.actions.inputs import fold
from userdesk.models import User

_LIKE_SPECIALS = ("%", "_", "\\")


def indexed(dialect: str, query: str) -> bool:
    """Whether `matches` finds the rows through an index (else it reads every row)."""
    needle = fold(query)
    if dialect == "postgresql":
        return len(needle) >= 3
    return len(needle) >= 3 and not any(c in needle for c in _LIKE_SPECIALS)


def contains(dialect: str, query: str, column: Any = None) -> ColumnElement[bool]:
    """The row's search text contains the query (tested row by row: no index serves
    strpos() or instr(), so a planner never takes a trigram index for a two-letter query,
    which would read all of it)."""
    needle = fold(query)
    column = User.search_text if column is None else column
    if dialect == "postgresql":
        return func.strpos(column, needle) > 0
    return func.instr(column, needle) > 0


def matches(dialect: str, query: str) -> ColumnElement[bool]:
    needle = fold(query)
    if not indexed(dialect, query):
        return contains(dialect, query)
    if dialect == "postgresql":
        return User.search_text.contains(needle, autoescape=True)
    fts = (
        select(text("rowid"))
        .select_from(text("users_search"))
        .where(text("users_search.search_text LIKE :needle").bindparams(needle=f"%{needle}%"))
    )
    return User.id.in_(fts.scalar_subquery())
