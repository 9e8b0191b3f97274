"""The outbox worker: emails and webhook deliveries, in `userdesk serve` and `userdesk worker`."""

from __future__ import annotations

import asyncio
import contextlib
import logging

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
        """One batch of each kind, side by side (a slow receiver does not hold up email);
        returns how many rows were handled."""
        handled = await asyncio.gather(self.mail.run_once(), self.webhooks.run_once())
        return sum(handled)

    async def run_until(self, stop: asyncio.Event, *, idle_seconds: float = 2.0) -> None:
        """Work until `stop` is set: batch after batch while there are due rows, else wait."""
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except Exception:  # the database may be briefly unreachable: keep the worker up
                log.exception("outbox worker round failed; retrying")
                handled = 0
            if handled:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=idle_seconds)
