"""TOTP (RFC 6238) codes and recovery codes: generation and constant-time checks."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp

PERIOD = 30  # seconds per time step
DIGITS = 6
# Codes of the previous and next step are accepted too, for clocks a little off.
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def new_secret() -> str:
    """A 160-bit key in base32, as authenticator apps expect (RFC 4226 recommends 160)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )


def step_at(moment: datetime) -> int:
    return int(moment.timestamp()) // PERIOD


def code_at_step(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).at(step * PERIOD)


def matching_step(secret: str, code: str, moment: datetime) -> int | None:
    """The time step whose code this is (within the allowed drift), or None."""
    code = normalise_code(code)
    if not looks_like_totp(code):
        return None
    now = step_at(moment)
    found = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        # Every candidate is compared, so timing does not tell which step matched.
        if hmac.compare_digest(code_at_step(secret, step), code) and found is None:
            found = step
    return found


def normalise_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def new_recovery_codes() -> list[str]:
    """Ten codes of 80 bits each, shown as xxxx-xxxx-xxxx-xxxx."""
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def recovery_digest(code: str) -> str:
    """Recovery codes carry 80 random bits, so SHA-256 is a safe stored form."""
    return hashlib.sha256(normalise_code(code).encode("ascii", "replace")).hexdigest()


def looks_like_totp(code: str) -> bool:
    """Six ASCII digits (str.isdigit alone would take "１２３４５６" too)."""
    normalised = normalise_code(code)
    return len(normalised) == DIGITS and normalised.isascii() and normalised.isdigit()
