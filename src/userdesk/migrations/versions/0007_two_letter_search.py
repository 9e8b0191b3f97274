"""an index of the two-letter pieces of users.search_text, so a two-letter search finds its
users without reading the table

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

Trigram indexes answer searches of three characters or more. A two-letter search used to
walk the name index testing every entry: quick when matches are spread along the order,
but 'zo' at a million users matches 9,000 people clustered in a few runs of names, and the
walk read 213,000 entries for its first page (70 ms on PostgreSQL).

PostgreSQL: a GIN index over userdesk_bigrams(search_text), the distinct two-character
substrings of the text as an array; a search asks `userdesk_bigrams(search_text) @>
ARRAY['zo']`. SQLite: a contentless FTS5 table with one token per two-character substring
(its UTF-8 bytes in hex, as FTS5 tokenizers split on punctuation), kept in step by
triggers. Triggers cannot hold a WITH clause, so the positions come from json_each over a
JSON array as long as the text (built from zeroblob), not from a recursive query.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIGRAMS_FUNCTION = (
    "CREATE OR REPLACE FUNCTION userdesk_bigrams(text) RETURNS text[] "
    "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ "
    "SELECT coalesce(array_agg(DISTINCT substr($1, i, 2)), '{}'::text[]) "
    "FROM generate_series(1, length($1) - 1) AS i $$"
)


def sqlite_bigram_tokens(column: str) -> str:
    """The text in `column` as its two-character substrings, space-separated hex tokens,
    as this revision writes them (queries/search.py reads them the same way; a migration
    keeps its own copy so that later code cannot change what it built)."""
    positions = (
        f"json_each('[' || rtrim(replace(hex(zeroblob(length({column}) - 1)), '00', '0,'), ',')"
        " || ']')"
    )
    return f"(SELECT group_concat(hex(substr({column}, p.key + 1, 2)), ' ') FROM {positions} AS p)"


SQLITE_FILL_BIGRAMS = (
    "INSERT INTO users_bigrams(rowid, grams) "
    f"SELECT id, {sqlite_bigram_tokens('search_text')} FROM users"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(BIGRAMS_FUNCTION)
        op.execute(
            "CREATE INDEX ix_users_search_bigrams ON users "
            "USING gin (userdesk_bigrams(search_text))"
        )
        return
    op.execute(
        "CREATE VIRTUAL TABLE users_bigrams USING fts5("
        "grams, content='', detail='none', tokenize='ascii')"
    )
    new, old = sqlite_bigram_tokens("new.search_text"), sqlite_bigram_tokens("old.search_text")
    op.execute(
        "CREATE TRIGGER users_bigrams_ai AFTER INSERT ON users BEGIN "
        f"INSERT INTO users_bigrams(rowid, grams) VALUES (new.id, {new}); END"
    )
    op.execute(
        "CREATE TRIGGER users_bigrams_ad AFTER DELETE ON users BEGIN "
        "INSERT INTO users_bigrams(users_bigrams, rowid, grams) "
        f"VALUES ('delete', old.id, {old}); END"
    )
    op.execute(
        "CREATE TRIGGER users_bigrams_au AFTER UPDATE OF search_text ON users BEGIN "
        "INSERT INTO users_bigrams(users_bigrams, rowid, grams) "
        f"VALUES ('delete', old.id, {old}); "
        f"INSERT INTO users_bigrams(rowid, grams) VALUES (new.id, {new}); END"
    )
    op.execute(SQLITE_FILL_BIGRAMS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_users_search_bigrams")
        op.execute("DROP FUNCTION userdesk_bigrams(text)")
        return
    for trigger in ("users_bigrams_ai", "users_bigrams_ad", "users_bigrams_au"):
        op.execute(f"DROP TRIGGER {trigger}")
    op.execute("DROP TABLE users_bigrams")
