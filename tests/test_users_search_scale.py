"""The Users page on a population larger than its sample (the benchmark's people, 20,000),
on both databases: pages found by walking the name index and pages found by sorting the
matches give exactly the users a plain reading of the table gives, in order; tab counts
are exact, or estimates flagged as such (in the API and on the console) and close to the
truth.

The expected results are computed here, in Python, from every user's row.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bench.population import analyze, load
from tests.conftest import Directory
from userdesk.actions.context import Actor
from userdesk.actions.inputs import fold
from userdesk.db import Database
from userdesk.models import Role, User, UserStatus, user_roles
from userdesk.queries import users as user_queries

SYSTEM = Actor.system("scale")
PEOPLE = 20_000
CONSOLE_PASSWORD = "a long and unguessable passphrase"


async def _everyone(database: Database) -> list[dict[str, Any]]:
    async with database.reader() as session:
        rows = await session.execute(select(User.id, User.name_key, User.search_text, User.status))
        roles = await session.execute(
            select(user_roles.c.user_id, Role.name).join(Role, Role.id == user_roles.c.role_id)
        )
    held: dict[int, set[str]] = {}
    for user_id, role in roles:
        held.setdefault(user_id, set()).add(role)
    return [
        {"id": i, "key": (k, i), "text": t, "status": s.value, "roles": held.get(i, set())}
        for i, k, t, s in rows
    ]


def _expected(
    everyone: list[dict[str, Any]], q: str, role: str | None, status: str | None
) -> list[dict[str, Any]]:
    needle = fold(q)
    return sorted(
        (
            u
            for u in everyone
            if needle in u["text"]
            and (role is None or role in u["roles"])
            and (status is None or u["status"] == status)
        ),
        key=lambda u: u["key"],
    )


async def _pages(database: Database, pages: int, **params: Any) -> tuple[list[int], Any]:
    ids: list[int] = []
    cursor = None
    first = None
    for _ in range(pages):
        async with database.reader() as session:
            page = await user_queries.list_users(
                session, viewer=SYSTEM, limit=40, cursor=cursor, **params
            )
        first = first or page
        ids += [u.id for u in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    return ids, first


@pytest.fixture
async def crowd(database: Database, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    # The sample is taken from 50,000 users on; here from these 20,000.
    monkeypatch.setattr(user_queries, "SAMPLE_FROM", PEOPLE // 2)
    await load(database, PEOPLE, seed=11)
    await analyze(database)
    return await _everyone(database)


CASES: list[dict[str, Any]] = [
    {"q": "smith"},
    {"q": "smith", "status": "active"},
    {"q": "an"},  # two letters: through the index of two-letter pieces
    {"q": "zo", "status": "pending"},
    {"q": "h."},  # two letters, one of them punctuation (and a LIKE wildcard in SQL)
    {"q": "n", "status": "active"},  # one letter: no index, always a walk
    {"q": "ü"},
    {"q": "son", "role": "user"},
    {"q": "", "role": "user", "status": "deactivated"},
    {"q": "", "role": "admin"},
    {"q": "", "role": "owner"},  # nobody: a walk would read the whole index for nothing
    {"q": "an", "role": "owner"},  # two letters, but the role narrows first
    {"q": "example.org"},
]


@pytest.mark.parametrize("walk_from", [0, 10**9], ids=["walking", "sorting"])
async def test_walked_and_sorted_pages_are_the_plain_answer(
    database: Database,
    crowd: list[dict[str, Any]],
    walk_from: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(user_queries, "WALK_FROM", walk_from)
    monkeypatch.setattr(user_queries, "SEARCH_WALK_FROM", walk_from)
    for case in CASES:
        status = case.get("status")
        expected = _expected(crowd, case["q"], case.get("role"), status)
        ids, _ = await _pages(
            database,
            3,
            q=case["q"],
            role=case.get("role"),
            status=UserStatus(status) if status else None,
        )
        assert ids == [u["id"] for u in expected][: len(ids)], case
        assert len(ids) == min(120, len(expected)), case
    # Descending, from a cursor, walks the same way back.
    expected = _expected(crowd, "smith", None, None)[::-1]
    ids, _ = await _pages(database, 2, q="smith", sort="-name")
    assert ids == [u["id"] for u in expected][:80]


async def test_counts_are_exact_or_flagged_estimates_close_to_the_truth(
    database: Database, crowd: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Few matches: exact. (20,000 users is more than the sample, so the sample is used.)
    assert (
        PEOPLE > user_queries.SAMPLE_FROM > user_queries.SAMPLE_BLOCKS * user_queries.SAMPLE_BLOCK
    )
    rare = "ü"
    truth = Counter(u["status"] for u in _expected(crowd, rare, None, None))
    _, page = await _pages(database, 1, q=rare)
    assert not page.counts_estimated
    assert page.counts == {
        "all": sum(truth.values()),
        **{s.value: truth[s.value] for s in UserStatus},
    }

    # Many matches (the limit lowered to make "many" of a few hundred): estimated, flagged,
    # rounded to two figures, and near the truth.
    monkeypatch.setattr(user_queries, "EXACT_COUNT_LIMIT", 50)
    for q, role in (("smith", None), ("an", None), ("", "user")):
        matched = _expected(crowd, q, role, None)
        truth = Counter(u["status"] for u in matched)
        _, page = await _pages(database, 1, q=q, role=role)
        assert page.counts_estimated, (q, role)
        assert abs(page.counts["all"] - len(matched)) <= 0.2 * len(matched), (q, page.counts)
        assert abs(page.counts["active"] - truth["active"]) <= 0.2 * truth["active"], q
        for value in page.counts.values():
            assert value < 100 or len(str(value).rstrip("0")) <= 2, page.counts


async def test_estimates_are_labelled_in_the_api_and_on_the_console(
    client: httpx.AsyncClient,
    directory: Directory,
    crowd: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.test_console_http import sign_in

    await directory.account("ada", roles=["admin"], password=CONSOLE_PASSWORD)
    exact = await client.get("/api/v1/users", params={"q": "ü"}, headers=directory.owner.headers)
    assert exact.json()["counts_estimated"] is False
    monkeypatch.setattr(user_queries, "EXACT_COUNT_LIMIT", 50)
    api = await client.get("/api/v1/users", params={"q": "smith"}, headers=directory.owner.headers)
    assert api.status_code == 200 and api.json()["counts_estimated"] is True
    await sign_in(client, "ada", CONSOLE_PASSWORD)
    page = await client.get("/users", params={"q": "smith"})
    assert page.status_code == 200
    tab = re.search(
        r'<span class="count estimate" data-tab="all" title="([^"]+)">~([\d,]+)<', page.text
    )
    assert tab and "estimate" in tab.group(1), page.text[:2000]
    assert int(tab.group(2).replace(",", "")) == api.json()["counts"]["all"]
    assert "shown of <abbr" in page.text and ">about " in page.text


async def test_a_run_of_matches_in_one_sampled_block_is_counted_not_extrapolated(
    database: Database, crowd: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixty people next to each other in id order (one company imported at once) who all
    fall in the first sampled block: extrapolated, they would read as hundreds."""
    from userdesk.actions.inputs import UserUpdate
    from userdesk.actions.users import update_user

    monkeypatch.setattr(user_queries, "EXACT_COUNT_LIMIT", 10)
    first = sorted(u["id"] for u in crowd)[:60]
    async with database.transaction() as session:
        public = dict(
            (await session.execute(select(User.id, User.public_id).where(User.id.in_(first)))).all()
        )
        for n, row_id in enumerate(first):
            await update_user(
                session,
                actor=SYSTEM,
                user_id=public[row_id],
                data=UserUpdate(name=f"Zyxcorp Person {n}"),
            )
    ids, page = await _pages(database, 2, q="zyxcorp")
    assert not page.counts_estimated
    assert page.counts["all"] == 60 and len(ids) == 60
    # Spread-out matches are still estimated (and never below what the page shows).
    _, spread = await _pages(database, 1, q="smith")
    assert spread.counts_estimated and spread.counts["all"] >= len(spread.items)
