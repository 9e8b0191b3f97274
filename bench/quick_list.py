"""A first, in-process look at the Users page queries on a large directory.

Loads N synthetic users straight into a fresh database (SQL bulk insert of rows built with
the same key functions the actions use; no HTTP, no per-row validation), then times
queries.users.list_users for the Users page's common requests. It is a smoke check of the
indexes, not the benchmark: the benchmark issue drives a real server over HTTP.

    python bench/quick_list.py --url sqlite:///var/bench.db --users 100000
    python bench/quick_list.py --url postgresql://postgres@127.0.0.1/userdesk_bench --users 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import insert, select, update
from sqlalchemy.engine import make_url

from userdesk.actions.context import Actor
from userdesk.actions.inputs import fold, sort_key
from userdesk.actions.users import search_text
from userdesk.config import Settings, async_database_url, sqlite_path
from userdesk.db import Database
from userdesk.models import Role, User, UserCount, UserStatus, UserType, user_roles
from userdesk.models.users import NEVER
from userdesk.queries.users import list_users
from userdesk.services import Services

GIVEN = [
    "Anna",
    "Ben",
    "Chloé",
    "Dmitri",
    "Émile",
    "Fatima",
    "Giulia",
    "Hiroshi",
    "Ingrid",
    "José",
    "Kofi",
    "Léa",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Søren",
    "Tomás",
    "Ursula",
    "Vikram",
    "Wen",
    "Xavier",
    "Yara",
    "Zoë",
]
FAMILY = (
    ["Smith"] * 40
    + ["García"] * 25
    + ["Müller"] * 20
    + ["Nguyen"] * 15
    + [
        f"{p}{s}"
        for p in ("Berg", "Kov", "Lind", "Mor", "Ost", "Pal", "Rav", "Sol")
        for s in ("ström", "ács", "ley", "eau", "enko", "ini", "sen", "ard")
    ]
)


def _reset(url: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    target = make_url(async_database_url(url))
    admin = target.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{target.database}"')


async def load(database: Database, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = datetime(2019, 1, 1, tzinfo=UTC)
    async with database.transaction() as session:
        role_ids = {r.name: r.id for r in await session.scalars(select(Role))}
    totals: dict[tuple[UserStatus, UserType], int] = {}
    batch = 5_000
    for offset in range(0, count, batch):
        users, links = [], []
        for n in range(offset, min(offset + batch, count)):
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            name = f"{given} {family}"
            username = f"{fold(given)}.{fold(family)}{n}"
            email = f"{username}@example.com"
            roll = rng.random()
            status = (
                UserStatus.ACTIVE
                if roll < 0.85
                else UserStatus.PENDING
                if roll < 0.90
                else UserStatus.DEACTIVATED
            )
            kind = UserType.BOT if rng.random() < 0.001 else UserType.HUMAN
            created = start + timedelta(seconds=rng.randrange(0, 7 * 365 * 86400))
            last_login = (
                created + timedelta(days=rng.randrange(0, 300))
                if status is UserStatus.ACTIVE
                else None
            )
            users.append(
                {
                    "id": n + 1,
                    "public_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "username": username,
                    "username_key": fold(username),
                    "email": email,
                    "email_key": email,
                    "email_verified": True,
                    "name": name,
                    "name_key": sort_key(name),
                    "avatar_kind": "initials",
                    "type": kind,
                    "status": status,
                    "require_password_change": False,
                    "search_text": search_text(name, username, email),
                    "created_at": created,
                    "updated_at": created,
                    "last_login_at": last_login,
                    "last_login_key": last_login or NEVER,
                }
            )
            role = (
                "bot"
                if kind is UserType.BOT
                else rng.choices(["user", "user-manager", "admin", "guest"], [90, 3, 1, 6])[0]
            )
            links.append({"user_id": n + 1, "role_id": role_ids[role]})
            totals[(status, kind)] = totals.get((status, kind), 0) + 1
        async with database.transaction() as session:
            await session.execute(insert(User), users)
            await session.execute(insert(user_roles), links)
    async with database.transaction() as session:
        for (status, kind), value in totals.items():
            await session.execute(
                update(UserCount)
                .where(UserCount.status == status, UserCount.type == kind)
                .values(count=value)
            )
    await analyze(database)


async def analyze(database: Database) -> None:
    autocommit = database.engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as conn:
        await conn.exec_driver_sql(
            "VACUUM ANALYZE" if database.dialect == "postgresql" else "ANALYZE"
        )


CASES = {
    "first page": {},
    "common surname 'smith'": {"q": "smith"},
    "rare substring 'avsen12'": {"q": "avsen12"},
    "2-char 'zo'": {"q": "zo"},
    "role admin + active": {"role": "admin", "status": UserStatus.ACTIVE},
    "sort -email": {"sort": "-email"},
    "sort -last_login_at": {"sort": "-last_login_at"},
    "deactivated tab": {"status": UserStatus.DEACTIVATED},
}


async def timed(database: Database, repeat: int) -> None:
    viewer = Actor.system("bench")
    print("| query | p50 ms | max ms | counts.all |\n|---|---|---|---|")
    for label, params in CASES.items():
        samples, total = [], 0
        for _ in range(repeat):
            started = time.perf_counter()
            async with database.reader() as session:
                page = await list_users(session, viewer=viewer, limit=50, **params)
            samples.append((time.perf_counter() - started) * 1000)
            total = page.counts["all"]
        print(f"| {label} | {statistics.median(samples):.1f} | {max(samples):.1f} | {total} |")
    # 100 cursor steps of 50.
    started = time.perf_counter()
    cursor = None
    for _ in range(100):
        async with database.reader() as session:
            page = await list_users(session, viewer=viewer, limit=50, cursor=cursor)
        cursor = page.next_cursor
    print(f"| 100 cursor steps (mean per step) | {(time.perf_counter() - started) * 10:.1f} | | |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="time an already loaded database")
    args = parser.parse_args()
    if not args.reuse:
        _reset(args.url)
    database = Database(args.url, Services.from_settings(Settings()))
    try:
        if not args.reuse:
            await database.migrate()
            started = time.perf_counter()
            await load(database, args.users)
            print(
                f"loaded {args.users} users in {time.perf_counter() - started:.0f} s "
                f"({database.dialect})"
            )
        else:
            await analyze(database)
        await timed(database, args.repeat)
    finally:
        await database.dispose()


if __name__ == "__main__":
    asyncio.run(main())
