"""Workspace settings (one row) and the per-status user counters."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from userdesk.models.base import Base, JSONDocument
from userdesk.models.users import UserStatus, UserType, _enum

WORKSPACE_ID = 1


class Workspace(Base):
    """The workspace's settings. Later features add their settings here as columns."""

    __tablename__ = "workspace"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    seat_limit: Mapped[int | None] = mapped_column(Integer)
    # A session ends after this long without a request, and this long after sign-in at most.
    session_idle_minutes: Mapped[int] = mapped_column(Integer, default=480)
    session_max_hours: Mapped[int] = mapped_column(Integer, default=168)
    # The password policy. Composition rules are off by default, as NIST SP 800-63B advises.
    password_min_length: Mapped[int] = mapped_column(Integer, default=12)
    password_max_length: Mapped[int] = mapped_column(Integer, default=128)
    password_max_repeated: Mapped[int | None] = mapped_column(Integer)
    password_require_lowercase: Mapped[bool] = mapped_column(Boolean, default=False)
    password_require_uppercase: Mapped[bool] = mapped_column(Boolean, default=False)
    password_require_digit: Mapped[bool] = mapped_column(Boolean, default=False)
    password_require_symbol: Mapped[bool] = mapped_column(Boolean, default=False)
    password_reject_common: Mapped[bool] = mapped_column(Boolean, default=True)
    password_reject_personal: Mapped[bool] = mapped_column(Boolean, default=True)
    # Registration and sign-in.
    email_verification_required: Mapped[bool] = mapped_column(Boolean, default=False)
    two_factor_required_roles: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    # Brute force: an account locks for lockout_minutes after lockout_threshold failures in
    # a row; an address is refused after ip_failure_limit failures within lockout_minutes.
    lockout_threshold: Mapped[int] = mapped_column(Integer, default=10)
    lockout_minutes: Mapped[int] = mapped_column(Integer, default=15)
    ip_failure_limit: Mapped[int] = mapped_column(Integer, default=100)
    # Email delivery. No smtp_host: emails are kept in the outbox (the mail catcher).
    smtp_host: Mapped[str | None] = mapped_column(String(255))
    smtp_port: Mapped[int | None] = mapped_column(Integer)
    smtp_security: Mapped[str] = mapped_column(String(16), default="starttls")
    smtp_username: Mapped[str | None] = mapped_column(String(255))
    smtp_password: Mapped[str | None] = mapped_column(String(1000))  # sealed; never shown
    mail_from_address: Mapped[str | None] = mapped_column(String(320))
    mail_from_name: Mapped[str | None] = mapped_column(String(100))
    mail_max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    invitation_expiry_days: Mapped[int] = mapped_column(Integer, default=7)

    __table_args__ = (
        CheckConstraint(f"id = {WORKSPACE_ID}", name="single_row"),
        CheckConstraint("seat_limit IS NULL OR seat_limit >= 0", name="seat_limit_non_negative"),
    )


class UserCount(Base):
    """How many users have each (status, type).

    Kept by the actions in the same transaction as every change of status, so seat usage and
    the unfiltered tab counts are a read of six rows instead of a scan of a million users.
    """

    __tablename__ = "user_counts"

    status: Mapped[UserStatus] = mapped_column(_enum(UserStatus, "user_status"), primary_key=True)
    type: Mapped[UserType] = mapped_column(_enum(UserType, "user_type"), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (CheckConstraint("count >= 0", name="count_non_negative"),)
