"""What one authenticated request costs the database: the statements behind User Info and
behind creating a user, and on SQLite how User Info's are executed (one user's roles are
looked up by index, never built for every user first).

The benchmark found both: a token check plus User Info took five statements in two reads,
and joining the roles in the way the ORM writes it made SQLite read all of user_roles on
every request (about half a second at a million users).
"""

from __future__ import annotations

import httpx

from tests.conftest import Account, Directory, sqlite_only, statements
from userdesk.db import Database

PASSWORD = "a-Very-good-password-2026"


def _selects(seen: list[tuple[str, object]]) -> list[tuple[str, object]]:
    return [(sql, params) for sql, params in seen if sql.lstrip().upper().startswith("SELECT")]


async def test_user_info_reads_the_caller_and_the_user_in_one_statement_each(
    client: httpx.AsyncClient, database: Database, owner: Account, directory: Directory
) -> None:
    made = await directory.create("rhea", roles=["user", "guest", "user-manager"])
    # The first request notes the token's use (a write); what follows only reads.
    assert (await client.get("/api/v1/me", headers=owner.headers)).status_code == 200

    with statements(database) as seen:
        response = await client.get(f"/api/v1/users/{made['id']}", headers=owner.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    # Everything User Info shows came back: all three roles in name order, and the creator.
    assert body["roles"] == ["guest", "user", "user-manager"]
    assert body["created_by"] == owner.id

    selects = _selects(seen)
    assert len(selects) == 2, [sql for sql, _ in selects]
    assert all("user_roles" in sql for sql, _ in selects)

    # The caller's own roles decided what they may do: a token of a user without users:read
    # is refused by the same single statement.
    guest = await directory.account("gaia", roles=["guest"])
    await client.get("/api/v1/me", headers=guest.headers)
    with statements(database) as seen:
        refused = await client.get(f"/api/v1/users/{made['id']}", headers=guest.headers)
    assert refused.status_code in (403, 404), refused.text
    assert len(_selects(seen)) <= 2


@sqlite_only  # PostgreSQL's plans are checked at scale in test_query_plans.py
async def test_sqlite_looks_roles_up_by_user_for_the_caller_and_user_info(
    client: httpx.AsyncClient, database: Database, owner: Account, directory: Directory
) -> None:
    for i in range(30):
        await directory.create(f"filler{i}", roles=["user", "guest"])
    made = await directory.create("rhea", roles=["user"])
    await client.get("/api/v1/me", headers=owner.headers)
    with statements(database) as seen:
        response = await client.get(f"/api/v1/users/{made['id']}", headers=owner.headers)
    assert response.status_code == 200

    async with database.reader() as session:
        connection = await session.connection()
        for sql, params in _selects(seen):
            plan = [
                row[-1]
                for row in (
                    await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
                ).all()
            ]
            # SEARCH is an index lookup; SCAN of user_roles or users reads the whole table.
            full = [step for step in plan if step.startswith(("SCAN", "MATERIALIZE"))]
            assert not [s for s in full if "user_roles" in s or "users" in s], (sql, plan)


async def test_creating_a_user_costs_a_fixed_set_of_statements(
    client: httpx.AsyncClient, database: Database, owner: Account, directory: Directory
) -> None:
    await directory.create("first")  # the token's use is noted; later requests only read it
    with statements(database) as seen:
        made = await directory.create("second", roles=["user", "guest"])
    sql = [statement.split()[0].upper() + " " + _table(statement) for statement, _ in seen]
    assert made["roles"] == ["guest", "user"]
    # The caller; the workspace (locked: seat checks are serialised), once; the roles; the
    # caller's own user (the new user's creator); the uniqueness check; the writes; the audit.
    assert sql.count("SELECT workspace") == 1, sql
    assert not [s for s in sql if s == "UPDATE one_time_links"], sql  # a new user has none
    assert len([s for s in sql if s.startswith("SELECT")]) <= 6, sql


def _table(statement: str) -> str:
    words = statement.replace("\n", " ").split()
    for keyword in ("FROM", "INTO", "UPDATE"):
        if keyword in words[:-1]:
            return words[words.index(keyword) + 1]
    return ""


async def test_actions_on_a_user_lock_them_then_load_them_in_one_statement(
    client: httpx.AsyncClient, database: Database, owner: Account, directory: Directory
) -> None:
    made = await directory.create("rhea", roles=["user", "guest"], password=PASSWORD)
    login = {"login": "rhea", "password": PASSWORD}
    assert (await client.post("/api/v1/auth/login", json=login)).status_code == 200

    # Signing in: the password checked against the user read without a transaction; then,
    # in it, their status (a pending user's first sign-in locks the workspace first), then
    # the user's row locked, then read with their roles and creator at once. (Locked and
    # read in one statement, a lock that waited for a concurrent role change read the roles
    # as they were before it on PostgreSQL: see lock_user.)
    with statements(database) as seen:
        signed_in = await client.post("/api/v1/auth/login", json=login)
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["roles"] == ["guest", "user"]
    reads = [_table(sql) for sql, _ in _selects(seen)]
    assert reads.count("users") == 4 and "user_roles" not in reads, reads

    # Deactivating: the same lock and one read for the target.
    with statements(database) as seen:
        done = await client.post(f"/api/v1/users/{made['id']}/deactivate", headers=owner.headers)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "deactivated" and done.json()["created_by"] == owner.id
    reads = [_table(sql) for sql, _ in _selects(seen)]
    assert reads.count("users") == 2 and "user_roles" not in reads, reads
