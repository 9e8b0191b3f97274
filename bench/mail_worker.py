"""How fast the outbox worker delivers: N queued emails to a local SMTP server (aiosmtpd).

Queues N welcome emails straight into a fresh SQLite (or given PostgreSQL) database, points
the workspace at an in-process aiosmtpd server, and times one worker (or several, on
PostgreSQL) draining the outbox. Each email is rendered from its templates, sent over a
fresh SMTP connection and marked sent, as in production.

    python bench/mail_worker.py --emails 500
    python bench/mail_worker.py --url postgresql://postgres@127.0.0.1:5432/userdesk_mail \\
        --emails 500 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.controller import Controller
from sqlalchemy import update
from sqlalchemy.engine import make_url

from userdesk.actions.outbox import enqueue_email
from userdesk.config import Settings, async_database_url
from userdesk.db import Database
from userdesk.mail.worker import MailWorker
from userdesk.models import WORKSPACE_ID, Workspace
from userdesk.services import Services


class Counter:
    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.received += 1
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _fresh_postgres(url: str) -> None:
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{parsed.database}"')


async def measure(url: str, emails: int, workers: int) -> None:
    counter = Counter()
    port = _free_port()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    settings = Settings(database_url=url, secret_key="bench key")
    databases = [Database(url, Services.from_settings(settings)) for _ in range(workers)]
    try:
        await databases[0].migrate()
        async with databases[0].transaction() as session:
            await session.execute(
                update(Workspace)
                .where(Workspace.id == WORKSPACE_ID)
                .values(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
            )
            for n in range(emails):
                await enqueue_email(
                    session,
                    template="welcome",
                    to=f"user{n}@example.com",
                    context={"user_id": str(n), "name": f"User {n}", "username": f"user{n}"},
                )

        async def drain(database: Database) -> int:
            worker, total = MailWorker(database, batch=20), 0
            while handled := await worker.run_once():
                total += handled
            return total

        started = time.perf_counter()
        counts = await asyncio.gather(*(drain(d) for d in databases))
        elapsed = time.perf_counter() - started
    finally:
        for database in databases:
            await database.dispose()
        controller.stop()
    assert counter.received == emails == sum(counts), (counter.received, counts)
    print(
        f"{emails} emails, {workers} worker(s) on {make_url(url).get_backend_name()}: "
        f"{elapsed:.2f} s, {emails / elapsed:.0f} emails/s (per worker: {counts})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a database to create afresh (default: a temporary SQLite)")
    parser.add_argument("--emails", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = args.url or f"sqlite:///{Path(scratch) / 'mail.db'}"
        if url.startswith("postgres"):
            _fresh_postgres(url)
        asyncio.run(measure(async_database_url(url), args.emails, args.workers))


if __name__ == "__main__":
    main()
