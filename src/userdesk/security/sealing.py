"""Secrets the server must read back later (TOTP keys, a random password waiting in the
outbox) are sealed with the server's key (Fernet: AES-128-CBC with HMAC-SHA256) before they
reach the database, so a copy of the database alone reveals none of them.

The key comes from USERDESK_SECRET_KEY, or else from a key file created on first use beside
the data (USERDESK_SECRET_KEY_FILE). Every process of one deployment must use the same key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "sealed:v1:"


class SealingError(Exception):
    """A sealed value could not be opened: another server key, or a tampered value."""


class Sealer:
    """Seals with a key given, or read (and if need be created) on first use, so a server that
    never seals anything never writes a key file."""

    def __init__(self, key_material: str | Callable[[], str]) -> None:
        self._key = key_material
        self._cached: Fernet | None = None

    @property
    def _fernet(self) -> Fernet:
        if self._cached is None:
            material = self._key if isinstance(self._key, str) else self._key()
            # Any string of the operator's becomes a Fernet key through SHA-256.
            digest = hashlib.sha256(material.encode("utf-8")).digest()
            self._cached = Fernet(base64.urlsafe_b64encode(digest))
        return self._cached

    def seal(self, value: str) -> str:
        return PREFIX + self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        if not sealed.startswith(PREFIX):
            raise SealingError("not a sealed value")
        try:
            return self._fernet.decrypt(sealed[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SealingError(
                "a sealed value does not open with this server's key "
                "(was USERDESK_SECRET_KEY or the key file changed?)"
            ) from None


def key_from_file(path: Path) -> str:
    """Read the key file, creating it (mode 0600, 256 random bits) when it does not exist.
    The new key is written to a private file first and linked into place, which fails if
    another process got there first: processes starting together agree on one key, and none
    reads a half-written file."""
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(base64.urlsafe_b64encode(os.urandom(32)).decode("ascii") + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process's key won: use it
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    return path.read_text("ascii").strip()
