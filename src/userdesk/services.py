"""The outside world an action may need (time, randomness, hashing), reached through the session.

The database layer puts one Services object in every session's `info`, so an action's
signature stays `(session, *, actor, ...)` while tests swap the clock or the randomness.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.clock import Clock, SystemClock
from userdesk.config import Settings, secret_key_of
from userdesk.security.passwords import Passwords
from userdesk.security.randomness import Randomness, SystemRandomness
from userdesk.security.sealing import Sealer


@dataclass(frozen=True)
class Services:
    clock: Clock
    randomness: Randomness
    passwords: Passwords
    sealer: Sealer
    # Links in emails start with this (USERDESK_PUBLIC_URL).
    public_url: str = "http://127.0.0.1:8000"

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        return cls(
            clock=SystemClock(),
            randomness=SystemRandomness(),
            passwords=Passwords(settings),
            sealer=Sealer(lambda: secret_key_of(settings)),
            public_url=settings.public_url.rstrip("/"),
        )


def services_of(session: AsyncSession) -> Services:
    return session.info["services"]
