"""Password hashing with argon2id. Parameters come from settings; nothing is stored in clear."""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from userdesk.config import Settings

T = TypeVar("T")


# M_MMAP_THRESHOLD in glibc's mallopt().
_M_MMAP_THRESHOLD = -3


def _give_hash_memory_back() -> None:
    """argon2id takes its memory (19 MiB at the default parameters) from malloc, once per
    hash. glibc maps blocks that large at first, but after freeing one it raises its
    threshold and serves later ones from per-thread arenas, which keep the memory: a
    server that hashed on six threads at once would hold six times 19 MiB for good. A fixed
    threshold keeps such blocks mapped only while a hash runs. (Other C libraries: no-op.)"""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):
        pass


class Passwords:
    def __init__(self, settings: Settings) -> None:
        _give_hash_memory_back()
        # Hashes at once: one per core (at least two). More only queue on the CPU, each
        # holding its memory; fewer would leave a core idle.
        self._slots = threading.BoundedSemaphore(max(2, os.cpu_count() or 1))
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )

        # Verified against when the account does not exist, so that answer takes as long.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    # argon2 is deliberately slow (tens of ms); it runs in a worker thread (the C code
    # releases the GIL), so one sign-in does not stall every other request of the process.
    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._in_a_slot, self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if the password matches; with no hash, burns the same time and says False."""
        return await asyncio.to_thread(self._in_a_slot, self._verify, password_hash, password)

    def _in_a_slot(self, work: Callable[..., T], *args: Any) -> T:
        with self._slots:
            return work(*args)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._decoy, password) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the configured ones."""
        return self._hasher.check_needs_rehash(password_hash)
