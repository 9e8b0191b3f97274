"""Who is acting: a user with the permissions of their roles, or the system itself."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from userdesk.errors import PasswordChangeRequired, PermissionDenied, TwoFactorEnrolmentRequired
from userdesk.security.permissions import ALL_PERMISSIONS, Permission


@dataclass(frozen=True)
class Actor:
    """The acting party, with the request facts the audit log keeps (IP, user agent)."""

    user_id: int | None
    public_id: str | None
    name: str
    permissions: frozenset[str]
    ip: str | None = None
    user_agent: str | None = None
    # Signed in with a password that must be changed: until it is, every permission check
    # refuses (changing the password, reading oneself and signing out need none).
    must_change_password: bool = False
    # A role of the user requires 2FA (workspace.two_factor_required_roles) and it is not on:
    # until it is, every permission check refuses too (enrolling needs none). Set for sessions
    # and tokens alike, since a token acts for its user.
    must_enrol_two_factor: bool = False
    # Acting through a personal access token: restricted to a subset of permissions or not,
    # and when it expires. A token never changes its user's credentials unless it carries all
    # of the user's permissions, and never mints a token that outlives it.
    via_token: bool = False
    restricted_token: bool = False
    token_expires_at: datetime | None = None

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        """The operator at the command line, or the server's own bootstrap: every permission."""
        return cls(user_id=None, public_id=None, name=name, permissions=frozenset(ALL_PERMISSIONS))

    @property
    def is_system(self) -> bool:
        return self.user_id is None

    def has(self, permission: Permission) -> bool:
        return (
            permission in self.permissions
            and not self.must_change_password
            and not self.must_enrol_two_factor
        )

    def _ensure_password_current(self) -> None:
        if self.must_change_password:
            raise PasswordChangeRequired("change your password first (POST /api/v1/me/password)")
        if self.must_enrol_two_factor:
            raise TwoFactorEnrolmentRequired(
                "a role of yours requires two-factor authentication: set it up first "
                "(POST /api/v1/me/two-factor/setup, then POST /api/v1/me/two-factor/confirm)"
            )

    def ensure_own_credentials(self) -> None:
        """For changes of one's own credentials and keys (password, 2FA, email, tokens, E2EE
        keys): a token restricted to some permissions was given less than that."""
        if self.restricted_token:
            raise PermissionDenied(
                "a token restricted to some permissions cannot change its user's credentials, "
                "keys or tokens; sign in, or use an unrestricted token"
            )

    def ensure_may_act(self) -> None:
        """For actions on oneself that need no permission (own tokens, own E2EE keys): refused
        while a password change (or 2FA enrolment) is pending, and to restricted tokens."""
        self._ensure_password_current()
        self.ensure_own_credentials()

    def require(self, permission: Permission) -> None:
        self._ensure_password_current()
        if permission not in self.permissions:
            raise PermissionDenied(
                f"this needs the permission {permission.value}", permission=permission.value
            )

    def require_all(self, permissions: Iterable[str], *, doing: str) -> None:
        """Nobody grants, or acts on, more than they hold."""
        self._ensure_password_current()
        # Name owners.manage first when it is missing: it is what separates owners from admins.
        missing = sorted(
            set(permissions) - self.permissions,
            key=lambda p: (p != Permission.OWNERS_MANAGE, p),
        )
        if missing:
            raise PermissionDenied(
                f"{doing} needs the permission {missing[0]}, which you do not hold",
                permission=missing[0],
            )
