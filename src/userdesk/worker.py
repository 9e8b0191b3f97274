"""The outbox worker: emails and webhook deliveries, in `userdesk serve` and `userdesk worker`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from userdesk.db import Database
from userdesk.mail.worker import MailWorker
from userdesk.webhooks.worker import WebhookWorker

log = logging.getLogger("userdesk.worker")


class OutboxWorker:
    def __init__(
        self,
        database: Database,
        *,
        mail: MailWorker | None = None,
        webhooks: WebhookWorker | None = None,
    ) -> None:
        self.mail = mail or MailWorker(database)
        self.webhooks = webhooks or WebhookWorker(database)

    async def run_once(self) -> int:
        """One batch of each kind, side by side, waiting for both (run_until does not wait:
        it loops over each kind on its own); returns how many rows were handled."""
        handled = await asyncio.gather(self.mail.run_once(), self.webhooks.run_once())
        return sum(handled)

    async def run_until(self, stop: asyncio.Event, *, idle_seconds: float = 2.0) -> None:
        """Work until `stop` is set. Mail and webhooks each run in a loop of their own, batch
        after batch while there are due rows, else waiting: a receiver that takes its full
        timeout never holds up a password reset email."""
        await asyncio.gather(
            _loop("mail", self.mail.run_once, stop, idle_seconds),
            _loop("webhooks", self.webhooks.run_once, stop, idle_seconds),
        )


async def _loop(
    kind: str, run_once: Callable[[], Awaitable[int]], stop: asyncio.Event, idle_seconds: float
) -> None:
    while not stop.is_set():
        try:
            handled = await run_once()
        except Exception:  # the database may be briefly unreachable: keep the worker up
            log.exception("outbox worker round (%s) failed; retrying", kind)
            handled = 0
        if handled:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=idle_seconds)
