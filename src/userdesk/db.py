"""Engine, transactions and migrations for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from userdesk.config import async_database_url, sqlite_path
from userdesk.services import Services

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_WRITE = "userdesk_write"


def _configure_sqlite(engine: AsyncEngine) -> None:
    """Take transactions out of the driver's hands so we choose how each one begins.

    Write transactions begin IMMEDIATE: they take SQLite's single write lock up front, so two
    of them queue behind busy_timeout instead of both reading and then failing to upgrade.
    Reads begin DEFERRED and, in WAL mode, never wait for a writer.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """One per process: the engine and the two kinds of transaction adapters open."""

    def __init__(self, url: str, services: Services, *, pool_size: int = 10) -> None:
        self.url = async_database_url(url)
        path = sqlite_path(self.url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {}
        if not self.url.startswith("sqlite"):
            kwargs = {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
        self.engine = create_async_engine(self.url, **kwargs)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        self.services = services
        info = {"services": services}
        self._writer = async_sessionmaker(
            self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False, info=info
        )
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False, info=info)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        async with self._writer() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work; nothing it does is committed."""
        async with self._reader() as session:
            yield session

    async def migrate(self) -> None:
        async with self.engine.connect() as connection:
            await connection.run_sync(_upgrade)
            await connection.commit()

    async def dispose(self) -> None:
        await self.engine.dispose()


def dialect_of(session: AsyncSession) -> str:
    """ "postgresql" or "sqlite": for the few queries that differ by database."""
    bind = session.bind
    assert bind is not None, "sessions are always made bound to the engine"
    return bind.dialect.name


def _upgrade(connection: Connection) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
