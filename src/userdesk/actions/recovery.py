"""Emailed one-time links: forgot password, email verification, changing one's own email.

A link's secret travels only in the email (sealed in the outbox); the database keeps its
SHA-256 digest. A link works once, until it expires, and only for the address it was sent
to: a password change kills older reset links, an email change kills reset links sent to the
old address, and every action that sets an address ends the open verification links.
Unauthenticated requests get one answer whether or not the account exists, and each user
gets at most one new link per purpose per RESEND_INTERVAL, so nobody's mailbox is flooded.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import throttle
from userdesk.actions.audit import AuditEvent, diff, record_for_user
from userdesk.actions.context import Actor
from userdesk.actions.inputs import (
    EmailChange,
    LinkCheck,
    PasswordForgot,
    PasswordResetByLink,
    VerificationRequest,
    email_key,
    fold,
)
from userdesk.actions.outbox import enqueue_email, notify_user
from userdesk.actions.passwords import check_password, end_access, store_password
from userdesk.actions.reauth import check_current_password
from userdesk.actions.rules import ensure_can_act_on, flush_unique, lock_user
from userdesk.actions.users import _ensure_unique, _set_profile, snapshot
from userdesk.errors import (
    Conflict,
    Duplicate,
    EmailAlreadyVerified,
    InvalidInput,
    LinkInvalid,
    PermissionDenied,
    TooManyAttempts,
)
from userdesk.models import LinkPurpose, OneTimeLink, User, UserStatus
from userdesk.queries.workspace import get_workspace
from userdesk.security.permissions import Permission
from userdesk.security.randomness import token_digest
from userdesk.services import services_of

RESET_LINK_LIFETIME = timedelta(minutes=30)
VERIFICATION_LINK_LIFETIME = timedelta(hours=48)
RESEND_INTERVAL = timedelta(minutes=2)
DEAD_LINK = "this link is unknown, already used or expired; ask for a new one"
RESET_PATH = "reset-password"
VERIFY_PATH = "verify-email"


def _visitor(ip: str | None, user_agent: str | None, user: User | None = None) -> Actor:
    """An unauthenticated caller, for the audit log: anonymous, or the user whose link it
    follows (holding the link proves the mailbox)."""
    return Actor(
        user_id=user.id if user else None,
        public_id=user.public_id if user else None,
        name=user.username if user else "anonymous",
        permissions=frozenset(),
        ip=ip,
        user_agent=user_agent,
    )


async def _last_sent(session: AsyncSession, user: User, purpose: LinkPurpose) -> datetime | None:
    return await session.scalar(
        select(OneTimeLink.created_at)
        .where(OneTimeLink.user_id == user.id, OneTimeLink.purpose == purpose.value)
        .order_by(OneTimeLink.created_at.desc())
        .limit(1)
    )


async def _wait_before_next(session: AsyncSession, user: User, purpose: LinkPurpose) -> int:
    """Seconds until this user may get another link of this purpose; 0 when they may now."""
    last = await _last_sent(session, user, purpose)
    if last is None:
        return 0
    left = (last + RESEND_INTERVAL - services_of(session).clock.now()).total_seconds()
    return math.ceil(left) if left > 0 else 0


async def _ensure_may_send(session: AsyncSession, user: User, purpose: LinkPurpose) -> None:
    """For signed-in callers, who may hear why nothing was sent."""
    wait = await _wait_before_next(session, user, purpose)
    if wait:
        raise TooManyAttempts(
            "a link was sent a moment ago; check your mailbox or try again shortly",
            retry_after=wait,
        )


async def _send_link(
    session: AsyncSession, user: User, *, purpose: LinkPurpose, template: str, to: str
) -> None:
    """Store a new link's digest and queue the email that carries the link itself."""
    services = services_of(session)
    now = services.clock.now()
    reset = purpose is LinkPurpose.PASSWORD_RESET
    expires_at = now + (RESET_LINK_LIFETIME if reset else VERIFICATION_LINK_LIFETIME)
    secret = services.randomness.link_secret()
    session.add(
        OneTimeLink(
            user_id=user.id,
            purpose=purpose.value,
            digest=token_digest(secret),
            email=to,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await enqueue_email(
        session,
        template=template,
        to=to,
        context={
            "user_id": user.public_id,
            "name": user.name,
            "username": user.username,
            "email": to,
            "expires_at": expires_at.isoformat(),
        },
        # The secret rides in the fragment, which browsers never send to a server: it stays
        # out of access logs and Referer headers; the page reads it and POSTs it.
        secrets={
            "link": f"{services.public_url}/{RESET_PATH if reset else VERIFY_PATH}#token={secret}"
        },
    )


async def _close_links(
    session: AsyncSession, user: User, purpose: LinkPurpose, *, except_email: str | None = None
) -> None:
    """Mark the user's open links of this purpose used (but those sent to `except_email`)."""
    conditions = [
        OneTimeLink.user_id == user.id,
        OneTimeLink.purpose == purpose.value,
        OneTimeLink.used_at.is_(None),
    ]
    if except_email is not None:
        conditions.append(OneTimeLink.email != except_email)
    await session.execute(
        update(OneTimeLink).where(*conditions).values(used_at=services_of(session).clock.now())
    )


def _alive(link: OneTimeLink, user: User, now: datetime) -> bool:
    if link.used_at is not None or link.expires_at <= now or link.email is None:
        return False
    if user.status is UserStatus.DEACTIVATED:
        return False
    if link.purpose != LinkPurpose.PASSWORD_RESET:
        return True
    # Sent to the address the user still has, and not older than their password.
    changed = user.password_changed_at
    to_current_address = email_key(link.email) == user.email_key
    return to_current_address and (changed is None or link.created_at >= changed)


async def _live_link(
    session: AsyncSession, token: str, purpose: LinkPurpose, *, lock: bool = True
) -> tuple[OneTimeLink, User]:
    """The live link behind a secret and its user, or LinkInvalid (one answer for unknown,
    used and expired). Links are used under their user's row lock, so of two requests with
    one link the second waits, then finds it used."""
    found = (
        await session.execute(
            select(OneTimeLink.id, User.public_id)
            .join(User, User.id == OneTimeLink.user_id)
            .where(OneTimeLink.digest == token_digest(token), OneTimeLink.purpose == purpose.value)
        )
    ).first()
    if found is None:
        raise LinkInvalid(DEAD_LINK)
    user: User | None
    if lock:
        user = await lock_user(session, found.public_id)
    else:
        user = await session.scalar(select(User).where(User.public_id == found.public_id))
    link = await session.scalar(
        select(OneTimeLink)
        .where(OneTimeLink.id == found.id)
        .execution_options(populate_existing=True)
    )
    if user is None or link is None or not _alive(link, user, services_of(session).clock.now()):
        raise LinkInvalid(DEAD_LINK)
    return link, user


async def _eligible_user(session: AsyncSession, condition: ColumnElement[bool]) -> User | None:
    """The one user matching, locked, unless there is none or they are deactivated."""
    found = (await session.execute(select(User.public_id, User.status).where(condition))).first()
    if found is None or found.status is UserStatus.DEACTIVATED:
        return None
    return await lock_user(session, found.public_id)


async def request_password_reset(
    session: AsyncSession, *, data: PasswordForgot, ip: str | None, user_agent: str | None
) -> None:
    """Email a reset link to the account named by username or email, if there is one (not
    deactivated) and it got none in the last RESEND_INTERVAL. The caller learns nothing:
    every case returns the same nothing, and none hashes a password."""
    # Usernames cannot contain "@", so a login names at most one user.
    user = await _eligible_user(
        session,
        or_(User.username_key == fold(data.login), User.email_key == email_key(data.login)),
    )
    if user is None or await _wait_before_next(session, user, LinkPurpose.PASSWORD_RESET):
        return
    await _send_link(
        session, user, purpose=LinkPurpose.PASSWORD_RESET, template="password_reset", to=user.email
    )
    await record_for_user(
        session,
        actor=_visitor(ip, user_agent),
        event=AuditEvent.PASSWORD_RESET_REQUESTED,
        user=user,
        changes={"reset_email": {"before": None, "after": "queued"}},
    )


async def reset_link_user(session: AsyncSession, *, data: LinkCheck) -> tuple[User, datetime]:
    """Whose live reset link this is, and until when: the reset page asks before its form."""
    link, user = await _live_link(session, data.token, LinkPurpose.PASSWORD_RESET, lock=False)
    return user, link.expires_at


async def reset_password_by_link(
    session: AsyncSession, *, data: PasswordResetByLink, ip: str | None, user_agent: str | None
) -> User:
    """Set a new password (policy-checked) through a live reset link. Every reset link of the
    user dies, and every session and token ends; the user then signs in. Following the link
    proves the mailbox, so the address counts as verified."""
    link, user = await _live_link(session, data.token, LinkPurpose.PASSWORD_RESET)
    await check_password(
        session, data.new_password, username=user.username, email=user.email, field="new_password"
    )
    now = services_of(session).clock.now()
    before = snapshot(user)
    await store_password(session, user, data.new_password)
    user.require_password_change = False
    user.email_verified = True
    await _close_links(session, user, LinkPurpose.PASSWORD_RESET)
    await throttle.forget(session, user)
    ended = await end_access(session, user, now=now)
    changes = diff(before, snapshot(user))
    changes["password"] = {"changed": True}
    changes["sessions"] = {"before": ended, "after": 0}
    await record_for_user(
        session,
        actor=_visitor(ip, user_agent, user),
        event=AuditEvent.PASSWORD_RESET_COMPLETED,
        user=user,
        changes=changes,
    )
    await notify_user(session, user, "password_changed", by="a reset link")
    return user


async def _send_verification(session: AsyncSession, user: User) -> dict[str, Any]:
    await _send_link(
        session,
        user,
        purpose=LinkPurpose.EMAIL_VERIFICATION,
        template="email_verification",
        to=user.email,
    )
    return {"verification_email": {"before": None, "after": user.email}}


async def send_verification(session: AsyncSession, *, actor: Actor, user_id: str) -> User:
    """A verification link for the user's current address: one's own, or (users.edit)
    another user's."""
    if actor.public_id != user_id:
        actor.require(Permission.USERS_EDIT)
    user = await lock_user(session, user_id)
    ensure_can_act_on(actor, user, doing="sending a verification email to")
    if user.email_verified:
        raise EmailAlreadyVerified(f"{user.email} is already verified", field="email")
    if user.status is UserStatus.DEACTIVATED:
        raise Conflict(f"{user.username} is deactivated", field="status")
    await _ensure_may_send(session, user, LinkPurpose.EMAIL_VERIFICATION)
    changes = await _send_verification(session, user)
    await record_for_user(
        session, actor=actor, event=AuditEvent.EMAIL_VERIFICATION_SENT, user=user, changes=changes
    )
    return user


async def request_verification(
    session: AsyncSession, *, data: VerificationRequest, ip: str | None, user_agent: str | None
) -> None:
    """Email a new verification link to this address if it is an unverified, not
    deactivated user's and they got none in the last RESEND_INTERVAL; otherwise nothing."""
    user = await _eligible_user(session, User.email_key == email_key(data.email))
    if (
        user is None
        or user.email_verified
        or await _wait_before_next(session, user, LinkPurpose.EMAIL_VERIFICATION)
    ):
        return
    changes = await _send_verification(session, user)
    await record_for_user(
        session,
        actor=_visitor(ip, user_agent),
        event=AuditEvent.EMAIL_VERIFICATION_SENT,
        user=user,
        changes=changes,
    )


async def after_email_set(
    session: AsyncSession, user: User, *, created: bool = False
) -> dict[str, Any]:
    """For the actions that set a user's address (create, edit): open verification links
    (for an old address, or a pending change) end, and when the workspace requires verified
    addresses an unverified one gets a link. Returns what to add to the caller's audit.
    A user `created` in this transaction has no links yet (links go when their user does)."""
    if not created:
        await _close_links(session, user, LinkPurpose.EMAIL_VERIFICATION)
    workspace = await get_workspace(session)
    if (
        not workspace.email_verification_required
        or user.email_verified
        or user.status is UserStatus.DEACTIVATED
    ):
        return {}
    return await _send_verification(session, user)


async def _ensure_address_free(session: AsyncSession, user: User, email: str) -> None:
    taken = await session.scalar(
        select(User.id).where(User.email_key == email_key(email), User.id != user.id)
    )
    if taken is not None:
        raise Duplicate(f"email {email!r} is already in use", field="email")


async def request_email_change(session: AsyncSession, *, actor: Actor, data: EmailChange) -> None:
    """Change one's own address (with the current password), once the new address proves
    itself: a link goes to it, and the address changes only when it is followed. A newer
    request replaces an older pending one."""
    if actor.public_id is None:
        raise PermissionDenied("only a signed-in user has an email address of their own")
    actor.require(Permission.PROFILE_EDIT)
    actor.ensure_own_credentials()
    user = await lock_user(session, actor.public_id)
    await check_current_password(session, actor=actor, user=user, password=data.password)
    if email_key(data.email) == user.email_key:
        raise InvalidInput.one("email", "unchanged", "is already your email address")
    await _ensure_address_free(session, user, data.email)
    await _ensure_may_send(session, user, LinkPurpose.EMAIL_VERIFICATION)
    await _close_links(session, user, LinkPurpose.EMAIL_VERIFICATION, except_email=user.email)
    await _send_link(
        session,
        user,
        purpose=LinkPurpose.EMAIL_VERIFICATION,
        template="email_change",
        to=data.email,
    )
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.EMAIL_VERIFICATION_SENT,
        user=user,
        changes={"email_change": {"before": user.email, "after": data.email}},
    )


async def _apply_email_change(session: AsyncSession, user: User, new_email: str) -> dict[str, Any]:
    """Move the user to the address their link confirmed, if still free; tell the old one."""
    before = snapshot(user)
    old_email = user.email
    _set_profile(user, {"email": new_email, "email_verified": True})
    await _ensure_unique(session, user, {"email"}, exclude_id=user.id)
    user.updated_at = services_of(session).clock.now()
    await flush_unique(session)
    await enqueue_email(
        session,
        template="email_changed",
        to=old_email,
        context={
            "user_id": user.public_id,
            "name": user.name,
            "username": user.username,
            "old_email": old_email,
            "new_email": new_email,
        },
    )
    return diff(before, snapshot(user))


async def verify_email(
    session: AsyncSession, *, data: LinkCheck, ip: str | None, user_agent: str | None
) -> User:
    """Follow a verification link: the user's address is verified, or, for a link sent to a
    new address (own email change), the user moves to it (409 if it was taken meanwhile)."""
    link, user = await _live_link(session, data.token, LinkPurpose.EMAIL_VERIFICATION)
    assert link.email is not None
    now = services_of(session).clock.now()
    if email_key(link.email) == user.email_key:
        event = AuditEvent.EMAIL_VERIFIED
        changes: dict[str, Any] = {}
        if not user.email_verified:
            changes["email_verified"] = {"before": False, "after": True}
            user.email_verified = True
            user.updated_at = now
        link.used_at = now
    else:
        event = AuditEvent.USER_UPDATED
        changes = await _apply_email_change(session, user, link.email)
        await _close_links(session, user, LinkPurpose.EMAIL_VERIFICATION)
    await session.flush()
    if changes:
        await record_for_user(
            session, actor=_visitor(ip, user_agent, user), event=event, user=user, changes=changes
        )
    return user
