"""Randomness and token digests, behind a provider so tests can make them predictable."""

from __future__ import annotations

import hashlib
import secrets
import string
import uuid
from typing import Protocol

TOKEN_PREFIX = "udt_"
SESSION_PREFIX = "uds_"
LINK_PREFIX = "udl_"
INVITATION_PREFIX = "udi_"
_PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_.!@#%+="


class Randomness(Protocol):
    def token(self) -> str: ...
    def session_secret(self) -> str: ...
    def link_secret(self) -> str: ...
    def invitation_secret(self) -> str: ...
    def password(self) -> str: ...
    def public_id(self) -> str: ...


class SystemRandomness:
    def token(self) -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    def session_secret(self) -> str:
        return SESSION_PREFIX + secrets.token_urlsafe(32)

    def link_secret(self) -> str:
        """The secret of a one-time link sent by email (password reset, verification)."""
        return LINK_PREFIX + secrets.token_urlsafe(32)

    def invitation_secret(self) -> str:
        """The secret of an invitation or an invite link: the last part of its join URL."""
        return INVITATION_PREFIX + secrets.token_urlsafe(32)

    def password(self) -> str:
        return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(20))

    def public_id(self) -> str:
        return str(uuid.uuid4())


def token_digest(token: str) -> str:
    """Tokens and session secrets carry 256 bits of entropy, so one SHA-256 pass is a safe
    at-rest form (no KDF needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
