"""Password hashing with argon2id. Parameters come from settings; nothing is stored in clear."""

from __future__ import annotations

from argon2 import PasswordHasher

from userdesk.config import Settings


class Passwords:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)
