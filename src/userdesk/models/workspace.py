"""Workspace settings (one row) and the per-status user counters."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from userdesk.models.base import Base
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
