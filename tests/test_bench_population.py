"""The benchmark population: repeatable, shaped as the benchmark issue asks, loadable on
both databases through the users' input rules, and searched alike by both."""

from __future__ import annotations

import shutil
import unicodedata
from collections import Counter
from pathlib import Path

from bench.population import Person, load, people
from tests.conftest import postgres_only
from tests.conftest import test_services as services_for_tests
from userdesk.actions.context import Actor
from userdesk.actions.inputs import UserCreate
from userdesk.actions.users import create_user
from userdesk.db import Database
from userdesk.models import UserStatus, UserType
from userdesk.queries.users import list_users
from userdesk.queries.workspace import get_seats

SYSTEM = Actor.system("bench")


def test_the_same_seed_gives_the_same_people() -> None:
    assert list(people(500, seed=3)) == list(people(500, seed=3))
    assert list(people(500, seed=3)) != list(people(500, seed=4))


def test_the_population_has_the_issue_shape() -> None:
    crowd: list[Person] = list(people(20_000, seed=1))
    statuses = Counter(p.status for p in crowd if p.type is UserType.HUMAN)
    humans = sum(statuses.values())
    assert abs(statuses[UserStatus.ACTIVE] / humans - 0.85) < 0.02
    assert abs(statuses[UserStatus.PENDING] / humans - 0.05) < 0.01
    assert abs(statuses[UserStatus.DEACTIVATED] / humans - 0.10) < 0.015
    assert 0 < sum(p.type is UserType.BOT for p in crowd) < 100
    assert len({p.username for p in crowd}) == len(crowd)
    assert len({p.email for p in crowd}) == len(crowd)
    assert all(p.email.isascii() for p in crowd)
    accented = [p for p in crowd if not p.name.isascii()]
    assert len(accented) > len(crowd) // 5
    assert any(unicodedata.normalize("NFKD", p.name) != p.name for p in accented)
    surnames = Counter(p.name.split(" ", 1)[1] for p in crowd if p.type is UserType.HUMAN)
    (top, shared), *_ = surnames.most_common(1)
    # A few surnames are shared widely (thousands at a million), most are rare.
    assert shared > len(crowd) / 100, (top, shared)
    assert sum(1 for n in surnames.values() if n == 1) > len(surnames) / 3
    roles = Counter(p.role for p in crowd)
    assert roles["user"] > roles["guest"] > roles["user-manager"] > roles["admin"] > 0
    years = {p.created_at.year for p in crowd}
    assert len(years) >= 6


async def test_loading_keeps_the_counters_and_the_listing_exact(database: Database) -> None:
    crowd = list(people(3_000, seed=5))
    assert await load(database, 3_000, seed=5) == 3_000
    async with database.reader() as session:
        page = await list_users(session, viewer=SYSTEM, limit=10)
        seats = await get_seats(session, viewer=SYSTEM)
        pending = await list_users(session, viewer=SYSTEM, status=UserStatus.PENDING, limit=10)
    expected = Counter(p.status.value for p in crowd)
    assert page.counts == {
        "all": 3_000,
        **{s: expected[s] for s in ("active", "pending", "deactivated")},
    }
    humans = [
        p for p in crowd if p.type is UserType.HUMAN and p.status is not UserStatus.DEACTIVATED
    ]
    assert seats.used == len(humans)
    assert all(u.status is UserStatus.PENDING for u in pending.items)
    # The loaded rows carried their ids: a user created afterwards gets a new one.
    async with database.transaction() as session:
        made = await create_user(
            session,
            actor=SYSTEM,
            data=UserCreate(name="After Load", username="after.load", email="after@example.com"),
        )
        assert made.id > 3_000
    # The indexes and search triggers set aside for the load are back: the new user is found.
    async with database.reader() as session:
        found = await list_users(session, viewer=SYSTEM, q="after lo")
    assert [u.username for u in found.items] == ["after.load"]


SEARCHES = ("müller", "MÜLLER", "garcía", "GARCIA", "nguyễn", "ström", "Søren", "é", "ko", "smith")


@postgres_only
async def test_both_databases_find_the_same_users(
    database: Database, sqlite_template: Path, tmp_path: Path
) -> None:
    """The same population and the same terms (accents and case included) give the same
    users, in the same order, on PostgreSQL and on SQLite."""
    path = tmp_path / "same.db"
    shutil.copyfile(sqlite_template, path)
    sqlite = Database(f"sqlite+aiosqlite:///{path}", services_for_tests())
    try:
        for target in (database, sqlite):
            await load(target, 4_000, seed=9)
        for term in SEARCHES:
            found = []
            for target in (database, sqlite):
                async with target.reader() as session:
                    page = await list_users(session, viewer=SYSTEM, q=term, limit=500)
                found.append(([u.username for u in page.items], page.counts))
            assert found[0] == found[1], term
        assert found[0][0], "the last term finds somebody"
    finally:
        await sqlite.dispose()
