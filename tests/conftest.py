"""Fixtures: every API test runs once on SQLite and once on PostgreSQL.

PostgreSQL is reached through USERDESK_TEST_POSTGRES_URL (a server URL such as
postgresql://postgres@127.0.0.1:5432/test). Unset, the PostgreSQL half is skipped; set and
unreachable, those tests fail. Each test gets a fresh, fully migrated database: a copy of a
template file on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from userdesk.actions.context import Actor
from userdesk.actions.inputs import UserCreate
from userdesk.actions.tokens import create_token
from userdesk.actions.users import bootstrap_owner
from userdesk.clock import SystemClock
from userdesk.config import Settings
from userdesk.db import Database
from userdesk.http.app import create_app
from userdesk.security.passwords import Passwords
from userdesk.security.randomness import SystemRandomness
from userdesk.security.sealing import Sealer
from userdesk.services import Services

POSTGRES_URL = os.environ.get("USERDESK_TEST_POSTGRES_URL")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="USERDESK_TEST_POSTGRES_URL is not set"),
    ),
]
# For tests of PostgreSQL's row locks; SQLite runs one writer at a time and has none to test.
postgres_only = pytest.mark.parametrize("database_url", BACKENDS[1:], indirect=True)
sqlite_only = pytest.mark.parametrize("database_url", BACKENDS[:1], indirect=True)
TEST_SETTINGS = dict(argon2_time_cost=1, argon2_memory_kib=8, argon2_parallelism=1)
_counter = itertools.count()


class ShiftableClock:
    """Real time plus an offset tests can move forward: expiry without sleeping."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return SystemClock().now() + self.offset

    def advance(self, by: timedelta) -> None:
        self.offset += by


def test_services(clock: ShiftableClock | None = None) -> Services:
    return Services(
        clock=clock or ShiftableClock(),
        randomness=SystemRandomness(),
        passwords=Passwords(Settings(**TEST_SETTINGS)),
        sealer=Sealer("userdesk test key"),
        public_url="http://userdesk.test",
    )


def _admin_conninfo() -> str:
    assert POSTGRES_URL
    url = make_url(POSTGRES_URL).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _pg_url(name: str) -> str:
    assert POSTGRES_URL
    url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)


def _pg_admin(*statements: str) -> None:
    with psycopg.connect(_admin_conninfo(), autocommit=True, connect_timeout=5) as conn:
        for statement in statements:
            conn.execute(statement)


def pytest_report_header() -> str:
    if POSTGRES_URL:
        return f"userdesk: SQLite and PostgreSQL ({make_url(POSTGRES_URL).render_as_string()})"
    return "userdesk: SQLite only; set USERDESK_TEST_POSTGRES_URL to run the PostgreSQL half too"


def pytest_sessionstart(session: pytest.Session) -> None:
    """A PostgreSQL URL that is set but unreachable ends the run with a failure at once."""
    if POSTGRES_URL:
        try:
            _pg_admin("SELECT 1")
        except psycopg.Error as exc:
            pytest.exit(
                f"USERDESK_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {exc}", 3
            )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"

    async def build() -> None:
        database = Database(f"sqlite+aiosqlite:///{path}", test_services())
        await database.migrate()
        async with database.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        await database.dispose()

    asyncio.run(build())
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated template database, created once per test process and dropped at the end."""
    name = f"userdesk_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _pg_admin(f'CREATE DATABASE "{name}"')

    async def build() -> None:
        database = Database(_pg_url(name), test_services())
        await database.migrate()
        await database.dispose()

    try:
        asyncio.run(build())
        yield name
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "userdesk.db"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template_name: str = request.getfixturevalue("postgres_template")
    name = f"userdesk_t_{os.getpid()}_{next(_counter)}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    try:
        yield _pg_url(name)
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clock() -> ShiftableClock:
    return ShiftableClock()


@pytest.fixture
async def database(database_url: str, clock: ShiftableClock) -> AsyncIterator[Database]:
    database = Database(database_url, test_services(clock), pool_size=20)
    yield database
    await database.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, cookie_secure=False, **TEST_SETTINGS)


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database=database)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4321))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://userdesk.test", headers={"user-agent": "pytest"}
    ) as http:
        yield http


@dataclass
class Account:
    id: str
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def mint_token(database: Database, username: str) -> str:
    async with database.transaction() as session:
        _, secret = await create_token(
            session, actor=Actor.system("test"), username=username, name="test"
        )
    return secret


@pytest.fixture
async def owner(database: Database) -> Account:
    async with database.transaction() as session:
        user = await bootstrap_owner(
            session,
            actor=Actor.system("test"),
            data=UserCreate(name="Olive Owner", username="olive", email="olive@example.com"),
        )
        user_id = user.public_id
    return Account(user_id, "olive", await mint_token(database, "olive"))


class Directory:
    """Makes users through the API as the owner, and tokens for them."""

    def __init__(self, client: httpx.AsyncClient, database: Database, owner: Account) -> None:
        self.client = client
        self.database = database
        self.owner = owner

    async def create(
        self, username: str, *, as_: Account | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {
            "name": fields.pop("name", username.title()),
            "username": username,
            "email": fields.pop("email", f"{username}@example.com"),
            **fields,
        }
        response = await self.client.post(
            "/api/v1/users", json=body, headers=(as_ or self.owner).headers
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def account(
        self, username: str, roles: list[str] | None = None, **fields: Any
    ) -> Account:
        user = await self.create(username, roles=roles or ["user"], **fields)
        return Account(user["id"], username, await mint_token(self.database, username))


@pytest.fixture
async def directory(client: httpx.AsyncClient, database: Database, owner: Account) -> Directory:
    return Directory(client, database, owner)


@contextmanager
def statements(database: Database) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement sent to the database while the block runs, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


# Real processes (`userdesk serve`) for the CLI and fuzz tests.
from tests.processes import start_server  # noqa: E402, F401


async def queued_emails(database: Database, template: str | None = None) -> list[dict[str, Any]]:
    """The outbox's email rows, oldest first, each {"to", "template", "context", "secrets"}
    with the sealed secrets opened (as the email worker will when it renders them)."""
    from sqlalchemy import select

    from userdesk.actions.outbox import open_secrets
    from userdesk.models import OutboxMessage

    async with database.reader() as session:
        rows = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    emails = []
    for row in rows:
        payload = dict(row.payload)
        if template is not None and payload["template"] != template:
            continue
        payload["sealed"] = payload.get("secrets", {})
        payload["secrets"] = open_secrets(row.payload, database.services.sealer)
        payload["status"] = row.status
        emails.append(payload)
    return emails
