"""Audit entries: who changed what, with snapshots that outlive the users they name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from userdesk.models.base import Base, JSONDocument, UTCDateTime
from userdesk.models.users import BigId


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Public ids and name snapshots, no foreign keys: the entry stays when the user is deleted.
    actor_id: Mapped[str | None] = mapped_column(String(36))
    actor_name: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    target_name: Mapped[str | None] = mapped_column(String(200))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        Index("ix_audit_entries_actor_id_id", "actor_id", "id"),
        Index("ix_audit_entries_target_id_id", "target_id", "id"),
        Index("ix_audit_entries_action_id", "action", "id"),
        Index("ix_audit_entries_at", "at"),
    )
