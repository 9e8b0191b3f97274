"""No Users page query reads the whole users table for the first page, a deep page, the
last page or a selective search: their PostgreSQL plans are checked on a realistic
population (the benchmark's, 30,000 people, analyzed), as the benchmark issue asks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text

from bench.population import analyze, load
from tests.conftest import postgres_only, sqlite_only, statements
from userdesk.actions.context import Actor
from userdesk.db import Database
from userdesk.models import UserStatus
from userdesk.queries.users import browse_users, list_users

SYSTEM = Actor.system("plans")
PEOPLE = 30_000


def scans(plan: dict[str, Any]) -> Iterator[tuple[str, str, int]]:
    """Each node of a plan: its type, the relation it reads, and the rows it returned."""
    yield plan["Node Type"], plan.get("Relation Name", ""), plan.get("Actual Rows", 0)
    for child in plan.get("Plans", []):
        yield from scans(child)


async def plans_of(database: Database, seen: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    plans = []
    async with database.reader() as session:
        connection = await session.connection()
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            result = await connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
            )
            plans.append({"sql": statement, "plan": json.loads(json.dumps(result.scalar()))[0]})
    return plans


@postgres_only
async def test_users_page_queries_never_read_the_whole_users_table(database: Database) -> None:
    await load(database, PEOPLE, seed=3)
    await analyze(database)
    async with database.reader() as session:
        # A surname shared by a handful: a selective search.
        rare = (
            await session.execute(
                text(
                    "SELECT lower(split_part(name, ' ', 2)) AS surname FROM users GROUP BY 1 "
                    "HAVING count(*) BETWEEN 2 AND 5 AND length(lower(split_part(name, ' ', 2)))"
                    " >= 9 "
                    "ORDER BY 1 LIMIT 1"
                )
            )
        ).scalar_one()
        deep = None
        for _ in range(20):
            page = await list_users(session, viewer=SYSTEM, limit=100, cursor=deep)
            deep = page.next_cursor
    assert deep is not None

    cases: dict[str, dict[str, Any]] = {
        "first page": {},
        "first page, sorted by email descending": {"sort": "-email"},
        "a deep page": {"after": deep},
        "the last page": {"last": True},
        "a selective search": {"q": rare},
        # Two letters: found through the index of two-letter pieces, not by testing rows.
        "a two-letter search": {"q": "zo"},
        "a two-letter search, Pending tab": {"q": "zo", "status": UserStatus.PENDING},
        # ~450 of 30,000 hold it: looked up by id, not joined to a read of every user.
        "a role few hold, Active tab": {"role": "admin", "status": UserStatus.ACTIVE},
    }
    for case, params in cases.items():
        with statements(database) as seen:
            async with database.reader() as session:
                window = await browse_users(session, viewer=SYSTEM, limit=100, **params)
        assert window.items, case
        for explained in await plans_of(database, seen):
            # No sequential scan, and no index read end to end either: no node returns more
            # than a tenth of the users (an index-only scan of all of them is a full read).
            full = [
                (node, relation, rows)
                for node, relation, rows in scans(explained["plan"]["Plan"])
                if relation in ("users", "user_roles")
                and (node == "Seq Scan" or rows > PEOPLE // 10)
            ]
            assert not full, (case, full, explained["sql"][:300])


@sqlite_only
async def test_sqlite_finds_two_letter_and_longer_searches_through_their_indexes(
    database: Database,
) -> None:
    """SQLite's plans, read with EXPLAIN QUERY PLAN: a search is answered from the trigram
    table (three characters or more) or the table of two-letter pieces, never by a SCAN of
    users or of an index of users (which reads every entry)."""
    await load(database, 3_000, seed=3)
    await analyze(database)
    cases: dict[str, dict[str, Any]] = {
        "two letters": {"q": "zo"},
        "two letters, Active tab": {"q": "zo", "status": UserStatus.ACTIVE},
        "two letters, one of them punctuation": {"q": "a."},
        "two letters sorted by email": {"q": "ma", "sort": "-email"},
        "three letters": {"q": "smi"},
    }
    for case, params in cases.items():
        with statements(database) as seen:
            async with database.reader() as session:
                page = await list_users(session, viewer=SYSTEM, limit=100, **params)
        assert page.items, case
        async with database.reader() as session:
            connection = await session.connection()
            for sql, parameters in seen:
                if not sql.lstrip().upper().startswith("SELECT") or "user_counts" in sql:
                    continue
                plan = [
                    row[-1]
                    for row in await connection.exec_driver_sql(
                        "EXPLAIN QUERY PLAN " + sql, parameters
                    )
                ]
                full = [step for step in plan if re.match(r"SCAN (users|user_roles)\b", step)]
                assert not full, (case, plan, sql[:300])
