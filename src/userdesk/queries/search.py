"""Substring search over users.search_text: the one place with dialect-specific SQL.

Three characters or more: PostgreSQL answers LIKE '%q%' from the pg_trgm GIN index; SQLite
from the FTS5 trigram table users_search, which cannot take an ESCAPE clause, so a query
holding a LIKE wildcard is tested row by row there.

Two characters (a trigram index has nothing to look up for them): the index of two-letter
pieces that migration 0007 built. PostgreSQL: GIN over userdesk_bigrams(search_text), the
text's distinct two-character substrings as an array. SQLite: the contentless FTS5 table
users_bigrams, one token per two-character substring (its UTF-8 bytes in hex, which any
tokenizer keeps whole), kept in step by triggers.

One character: no index; every row is tested (such a query matches most users, so a walk
along the sort order fills a page at once).

`matches` is the form that finds the matching rows through those indexes; `contains` tests
one row's text (as a filter while walking an index in sort order, or over a sample).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Text, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY

from userdesk.actions.inputs import fold
from userdesk.models import User

_LIKE_SPECIALS = ("%", "_", "\\")


def sqlite_bigram_tokens(column: str) -> str:
    """SQLite: the text in `column` as its two-character substrings, space-separated hex
    tokens. Written for trigger bodies, which cannot hold a WITH clause: the positions
    come from json_each over a JSON array of as many zeros as there are pairs."""
    positions = (
        f"json_each('[' || rtrim(replace(hex(zeroblob(length({column}) - 1)), '00', '0,'), ',')"
        " || ']')"
    )
    return f"(SELECT group_concat(hex(substr({column}, p.key + 1, 2)), ' ') FROM {positions} AS p)"


# SQLite: index every user's text (when the table is made, and after a bulk load).
SQLITE_FILL_BIGRAMS = (
    "INSERT INTO users_bigrams(rowid, grams) "
    f"SELECT id, {sqlite_bigram_tokens('search_text')} FROM users"
)


def _bigram_token(needle: str) -> str:
    return needle.encode("utf-8").hex().upper()


def indexed(dialect: str, query: str) -> bool:
    """Whether `matches` finds the rows through an index (else it reads every row)."""
    needle = fold(query)
    if len(needle) == 2:
        return True
    if dialect == "postgresql":
        return len(needle) >= 3
    return len(needle) >= 3 and not any(c in needle for c in _LIKE_SPECIALS)


def contains(dialect: str, query: str, column: Any = None) -> ColumnElement[bool]:
    """The row's search text contains the query (tested row by row: no index serves
    strpos() or instr(), so a planner never takes a search index for it when walking an
    index in sort order, which would read all of the search index)."""
    needle = fold(query)
    column = User.search_text if column is None else column
    if dialect == "postgresql":
        return func.strpos(column, needle) > 0
    return func.instr(column, needle) > 0


def matches(dialect: str, query: str) -> ColumnElement[bool]:
    needle = fold(query)
    if not indexed(dialect, query):
        return contains(dialect, query)
    if len(needle) == 2:
        if dialect == "postgresql":
            grams = func.userdesk_bigrams(User.search_text, type_=ARRAY(Text))
            return grams.contains(bindparam("bigram", [needle], type_=ARRAY(Text)))
        pieces = (
            select(text("rowid"))
            .select_from(text("users_bigrams"))
            .where(text("users_bigrams MATCH :bigram").bindparams(bigram=_bigram_token(needle)))
        )
        return User.id.in_(pieces.scalar_subquery())
    if dialect == "postgresql":
        return User.search_text.contains(needle, autoescape=True)
    fts = (
        select(text("rowid"))
        .select_from(text("users_search"))
        .where(text("users_search.search_text LIKE :needle").bindparams(needle=f"%{needle}%"))
    )
    return User.id.in_(fts.scalar_subquery())
