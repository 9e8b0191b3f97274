"""Load the benchmark population into the Django admin peer's auth_user (the code behind
`python -m bench.peers.django_admin.load`, and `load()` for the harness).

    python -m bench.peers.django_admin.load --users 100000 \
        --url postgresql://postgres@127.0.0.1:5432/peer_x
    python -m bench.peers.django_admin.load --url sqlite:////tmp/peer_x.db --users 100000

Drops and creates the database (bench.population.fresh), runs Django's migrations, writes
the people of bench.population.people(count, seed) in bulk (COPY on PostgreSQL,
executemany in big transactions on SQLite), adds the superuser `benchadmin`, then
VACUUM ANALYZE (PostgreSQL) or ANALYZE (SQLite).

Person -> auth_user: id = position + 1 (1..count, so a pk is known without asking);
first_name = first word of the name, last_name = the rest; username, email as they are;
is_active = status is active; is_staff = role is admin or user-manager; never a superuser;
date_joined = created_at; last_login = last_login_at; an unusable password ("!" + 40
random characters, as make_password(None) writes). The superuser gets id count + 1 and a
real password hash (ADMIN_PASSWORD, Django's default hasher).

`load()` runs this module in a subprocess so that the calling process never configures
Django.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from bench.peers.django_admin.database import absolute, postgres_conninfo, sqlite_file

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = "bench.peers.django_admin.settings"
ADMIN_USERNAME = "benchadmin"
# Benchmark data only; the harness and tests sign in with it.
ADMIN_PASSWORD = "benchmark admin password"
NAME_MAX = 150  # first_name, last_name, username
EMAIL_MAX = 254
SQLITE_BATCH = 50_000
COLUMNS = (
    "id",
    "password",
    "last_login",
    "is_superuser",
    "username",
    "first_name",
    "last_name",
    "email",
    "is_staff",
    "is_active",
    "date_joined",
)
STAFF_ROLES = ("admin", "user-manager")


def load(url: str, count: int, seed: int = 1) -> None:
    """Fresh database at `url` with `count` people and the superuser (in a subprocess)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.peers.django_admin.load",
            "--url",
            absolute(url),
            "--users",
            str(count),
            "--seed",
            str(seed),
        ],
        env=os.environ | subprocess_environment(absolute(url)),
        cwd=ROOT,
        check=True,
    )


def subprocess_environment(url: str) -> dict[str, str]:
    """What a process running the peer's Django needs in its environment."""
    path = os.environ.get("PYTHONPATH")
    return {
        "PEER_DATABASE_URL": absolute(url),
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
    }


def _unusable_password() -> str:
    # make_password(None): "!" + 40 random characters; token_urlsafe(30) is 40 characters.
    return "!" + secrets.token_urlsafe(30)


def rows(count: int, seed: int) -> Iterator[tuple[object, ...]]:
    """auth_user rows in COLUMNS order, datetimes aware (UTC)."""
    from bench.population import people

    for n, person in enumerate(people(count, seed=seed)):
        first, _, rest = person.name.partition(" ")
        yield (
            n + 1,
            _unusable_password(),
            person.last_login_at,
            False,
            person.username[:NAME_MAX],
            first[:NAME_MAX],
            rest[:NAME_MAX],
            person.email[:EMAIL_MAX],
            person.role in STAFF_ROLES,
            person.status.value == "active",
            person.created_at,
        )


def _copy_postgres(url: str, count: int, seed: int) -> None:
    import psycopg

    with psycopg.connect(postgres_conninfo(url)) as conn, conn.cursor() as cursor:
        columns = ", ".join(COLUMNS)
        with cursor.copy(f"COPY auth_user ({columns}) FROM STDIN") as copy:
            for row in rows(count, seed):
                copy.write_row(row)
        # The ids were given; the identity sequence carries on after them.
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('auth_user', 'id'), "
            "(SELECT COALESCE(MAX(id), 0) + 1 FROM auth_user), false)"
        )


def _sqlite_datetime(value: datetime | None) -> str | None:
    # As Django writes them with USE_TZ: naive UTC, str() of the datetime.
    if value is None:
        return None
    return str(value.astimezone(UTC).replace(tzinfo=None))


def _insert_sqlite(path: Path, count: int, seed: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        statement = (
            f"INSERT INTO auth_user ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in COLUMNS)})"
        )
        batch: list[tuple[object, ...]] = []

        def flush() -> None:
            conn.execute("BEGIN")
            conn.executemany(statement, batch)
            conn.execute("COMMIT")
            batch.clear()

        for row in rows(count, seed):
            last_login, joined = row[2], row[10]
            assert last_login is None or isinstance(last_login, datetime)
            assert isinstance(joined, datetime)
            batch.append(
                (*row[:2], _sqlite_datetime(last_login), *row[3:10], _sqlite_datetime(joined))
            )
            if len(batch) >= SQLITE_BATCH:
                flush()
        if batch:
            flush()
    finally:
        conn.close()


def _analyze(url: str) -> None:
    path = sqlite_file(url)
    if path is not None:
        lite = sqlite3.connect(path, isolation_level=None)
        try:
            lite.execute("ANALYZE")
            lite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            lite.close()
        return
    import psycopg

    with psycopg.connect(postgres_conninfo(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description="Load the Django admin peer with N people.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    url = absolute(args.url)

    from bench.population import fresh

    fresh(url)
    os.environ.update(subprocess_environment(url))

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from django.contrib.auth.models import User
    from django.db import connection

    connection.close()  # the bulk writes use their own connection

    started = time.perf_counter()
    path = sqlite_file(url)
    if path is not None:
        _insert_sqlite(path, args.users, args.seed)
    else:
        _copy_postgres(url, args.users, args.seed)
    User.objects.create_superuser(ADMIN_USERNAME, f"{ADMIN_USERNAME}@example.com", ADMIN_PASSWORD)
    loaded = time.perf_counter() - started
    connection.close()
    _analyze(url)
    analyzed = time.perf_counter() - started - loaded
    dialect = "sqlite" if path is not None else "postgresql"
    print(
        f"loaded {args.users} users in {loaded:.1f} s, analyzed in {analyzed:.1f} s ({dialect})",
        flush=True,
    )


if __name__ == "__main__":
    main()
