"""The domain error tree. Errors carry data only; each adapter maps them to its protocol once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    field: str
    code: str
    message: str


class DomainError(Exception):
    """Base of every error an action or query raises on purpose. `code` is stable."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    code = "not_found"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class TwoFactorCodeRequired(Unauthenticated):
    """The password was right; a TOTP or recovery code must come with it."""

    code = "two_factor_required"


class EmailUnverified(Unauthenticated):
    code = "email_unverified"


class TooManyAttempts(DomainError):
    """Too many failed sign-ins for this account or address; retry after `retry_after` s."""

    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class PermissionDenied(DomainError):
    code = "permission_denied"

    def __init__(self, message: str, *, permission: str | None = None) -> None:
        super().__init__(message)
        self.permission = permission


class PasswordChangeRequired(PermissionDenied):
    code = "password_change_required"


class TwoFactorEnrolmentRequired(PermissionDenied):
    """A role of the user requires 2FA: nothing but enrolling until it is on."""

    code = "two_factor_enrolment_required"


class Conflict(DomainError):
    code = "conflict"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Duplicate(Conflict):
    code = "duplicate"


class LastOwner(Conflict):
    code = "last_owner"


class SeatLimitReached(Conflict):
    code = "seat_limit_reached"


class BuiltInRole(Conflict):
    code = "built_in_role"


class RoleInUse(Conflict):
    code = "role_in_use"


class PreconditionFailed(DomainError):
    """The caller's copy is stale: the resource changed since they read it (an ETag's
    If-Match no longer matches)."""

    code = "precondition_failed"


class InvalidInput(DomainError):
    code = "invalid_input"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors) or "invalid input")
        self.errors = errors

    @classmethod
    def one(cls, field: str, code: str, message: str) -> InvalidInput:
        return cls([FieldError(field, code, message)])

    @classmethod
    def from_pydantic(cls, errors: Iterable[Any], *, drop_location: bool) -> InvalidInput:
        """From pydantic's error list; `drop_location` strips FastAPI's body/query/path."""
        result = []
        for error in errors:
            loc = [str(part) for part in error.get("loc", ())]
            if drop_location and loc and loc[0] in ("body", "query", "path", "header"):
                loc = loc[1:]
            message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
            result.append(FieldError(".".join(loc) or "body", str(error.get("type")), message))
        return cls(result)


class LinkInvalid(InvalidInput):
    """A one-time link that is unknown, used, expired or superseded: one answer for all, so
    the answer tells nothing about which."""

    code = "link_invalid"

    def __init__(self, message: str) -> None:
        super().__init__([FieldError("token", "link_invalid", message)])


class EmailAlreadyVerified(Conflict):
    code = "email_already_verified"


class WrongPassword(InvalidInput):
    """The current password given to confirm a sensitive change was wrong. The HTTP adapter
    counts it as a failed sign-in of `user_id` (after the action's transaction rolled back),
    so these checks cannot be used to guess a password past the lockout."""

    def __init__(self, field: str, *, user_id: str) -> None:
        super().__init__([FieldError(field, "wrong_password", "is not your password")])
        self.user_id = user_id


class InvitationInvalid(DomainError):
    """A join token that cannot be used: unknown, expired, withdrawn or used (`reason`).
    A token that matches nothing gets the same code as one that stopped working."""

    code = "invitation_invalid"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
