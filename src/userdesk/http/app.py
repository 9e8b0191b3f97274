"""The ASGI application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from userdesk import __version__
from userdesk.config import Settings
from userdesk.db import Database
from userdesk.http import join_page, problems, rocketchat, scim, web
from userdesk.http.api import (
    auth,
    avatars,
    credentials,
    invitations,
    mail,
    recovery,
    roles,
    tokens,
    two_factor,
    users,
    webhooks,
    workspace,
)
from userdesk.http.deps import DatabaseDep
from userdesk.http.limits import RequestLimits
from userdesk.services import Services
from userdesk.worker import OutboxWorker


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    settings = settings or Settings()
    if database is None:
        database = Database(
            settings.database_url,
            Services.from_settings(settings),
            pool_size=settings.database_pool_size,
        )
    owned = database

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        delivering = None
        if settings.mail_worker:
            # Delivers the outbox (emails and webhooks) from inside the server
            # (USERDESK_MAIL_WORKER=false leaves it to `userdesk worker` processes).
            delivering = asyncio.create_task(OutboxWorker(owned).run_until(stop))
        yield
        stop.set()
        if delivering is not None:
            await delivering
        await owned.dispose()

    app = FastAPI(
        title="userdesk",
        version=__version__,
        description="Self-hosted user administration: users, roles, seats and the audit log.",
        lifespan=lifespan,
    )
    app.state.database = database
    app.state.settings = settings
    problems.install(app)
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_body_bytes)
    rocketchat.install(app)
    for module in (
        auth,
        users,
        avatars,
        roles,
        workspace,
        credentials,
        tokens,
        two_factor,
        recovery,
        mail,
        invitations,
        webhooks,
        join_page,
    ):
        app.include_router(module.router)
    scim.install(app)
    web.install(app)

    @app.get("/healthz", tags=["health"])
    async def healthz(database: DatabaseDep) -> dict[str, str]:
        async with database.reader() as session:
            await session.execute(text("SELECT 1"))
        return {"status": "ok", "database": database.dialect}

    return app


def app_from_environment() -> FastAPI:
    """For `uvicorn --factory userdesk.http.app:app_from_environment`."""
    return create_app(Settings())
