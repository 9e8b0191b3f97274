"""Secrets the server must read back later (TOTP keys, a random password waiting in the
outbox) are sealed with the server's key (Fernet: AES-128-CBC with HMAC-SHA256) before they
reach the database, so a copy of the database alone reveals none of them.

The key comes from USERDESK_SECRET_KEY, or else from a key file created on first use beside
the data (USERDESK_SECRET_KEY_FILE). Every process of one deployment must use the same key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "sealed:v1:"


class SealingError(Exception):
    """A sealed value could not be opened: another server key, or a tampered value."""


class Sealer:
    def __init__(self, key_material: str) -> None:
        # Any string of the operator's becomes a Fernet key through SHA-256.
        digest = hashlib.sha256(key_material.encode("utf-8")).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

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
    Creation is exclusive, so processes starting together agree on one key."""
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text("ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(base64.urlsafe_b64encode(os.urandom(32)).decode("ascii") + "\n")
    return path.read_text("ascii").strip()
