"""The audit event catalogue and the one function that writes an entry (and, for the changes
webhooks announce, queues their deliveries: see webhook_events.py)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.actions.webhook_events import queue_event
from userdesk.models import AuditEntry, User
from userdesk.services import services_of


class AuditEvent(StrEnum):
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_ROLES_CHANGED = "user.roles_changed"
    USER_DEACTIVATED = "user.deactivated"
    USER_ACTIVATED = "user.activated"
    USER_DELETED = "user.deleted"
    WELCOME_EMAIL_SENT = "user.welcome_email_sent"
    ROLE_CREATED = "role.created"
    ROLE_UPDATED = "role.updated"
    ROLE_DELETED = "role.deleted"
    SETTINGS_UPDATED = "settings.updated"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    SIGNED_IN = "auth.signed_in"
    SIGN_IN_FAILED = "auth.sign_in_failed"
    SIGNED_OUT = "auth.signed_out"
    PASSWORD_CHANGED = "user.password_changed"
    SESSIONS_REVOKED = "user.sessions_revoked"
    PASSWORD_RESET = "user.password_reset"
    PASSWORD_RESET_REQUESTED = "auth.password_reset_requested"
    PASSWORD_RESET_COMPLETED = "auth.password_reset_completed"
    EMAIL_VERIFICATION_SENT = "user.email_verification_sent"
    EMAIL_VERIFIED = "user.email_verified"
    TWO_FACTOR_ENABLED = "user.two_factor_enabled"
    TWO_FACTOR_DISABLED = "user.two_factor_disabled"
    TWO_FACTOR_RESET = "user.two_factor_reset"
    RECOVERY_CODES_REGENERATED = "user.recovery_codes_regenerated"
    E2E_KEYS_SET = "user.e2e_keys_set"
    E2E_KEYS_RESET = "user.e2e_keys_reset"
    ACCOUNT_LOCKED = "auth.account_locked"
    ACCOUNT_UNLOCKED = "auth.account_unlocked"
    EMAIL_RETRIED = "mail.retried"
    TEST_EMAIL_SENT = "mail.test_sent"
    INVITATION_SENT = "invitation.sent"
    INVITATION_RESENT = "invitation.resent"
    INVITATION_REVOKED = "invitation.revoked"
    INVITATION_ACCEPTED = "invitation.accepted"
    INVITE_LINK_CREATED = "invite_link.created"
    INVITE_LINK_REVOKED = "invite_link.revoked"
    USER_JOINED = "user.joined"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_UPDATED = "webhook.updated"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_REDELIVERED = "webhook.redelivered"
    WEBHOOK_PINGED = "webhook.pinged"


# Never written to the audit log, whatever an action passes: only the fact of a change is kept.
SECRET_FIELDS = frozenset(
    {
        "password",
        "password_hash",
        "token",
        "digest",
        "totp_secret",
        "code",
        "recovery_codes",
        "smtp_password",
    }
)


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """{field: {"before": old, "after": new}} for the fields whose value changed."""
    changes: dict[str, Any] = {}
    for key, new in after.items():
        old = before.get(key)
        if old != new:
            changes[key] = (
                {"changed": True} if key in SECRET_FIELDS else {"before": old, "after": new}
            )
    return changes


async def record(
    session: AsyncSession,
    *,
    actor: Actor,
    event: AuditEvent,
    target_type: str,
    target_id: str | None,
    target_name: str | None,
    changes: dict[str, Any] | None = None,
) -> None:
    clean = {
        k: ({"changed": True} if k in SECRET_FIELDS else v) for k, v in (changes or {}).items()
    }
    session.add(
        AuditEntry(
            at=services_of(session).clock.now(),
            actor_id=actor.public_id,
            actor_name=actor.name,
            action=event.value,
            target_type=target_type,
            target_id=target_id,
            target_name=target_name,
            changes=clean,
            ip=actor.ip,
            user_agent=actor.user_agent[:500] if actor.user_agent else None,
        )
    )
    await queue_event(
        session,
        action=event.value,
        actor=actor,
        target={"type": target_type, "id": target_id, "name": target_name},
        changes=clean,
    )


async def record_for_user(
    session: AsyncSession,
    *,
    actor: Actor,
    event: AuditEvent,
    user: User,
    changes: dict[str, Any],
) -> None:
    """An audit entry whose target is a user, named by their username at the time."""
    await record(
        session,
        actor=actor,
        event=event,
        target_type="user",
        target_id=user.public_id,
        target_name=user.username,
        changes=changes,
    )
