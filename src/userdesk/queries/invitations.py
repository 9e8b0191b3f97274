"""Invitations and invite links: their statuses, and the listings, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from userdesk.actions.context import Actor
from userdesk.errors import InvalidInput, NotFound
from userdesk.models import Invitation, InviteLink, User
from userdesk.queries import cursors
from userdesk.security.permissions import Permission
from userdesk.services import services_of

MAX_LIMIT = 500


class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    REVOKED = "revoked"


class InviteLinkStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    USED_UP = "used_up"
    REVOKED = "revoked"


def invitation_open(now: datetime) -> ColumnElement[bool]:
    """Pending: not accepted, not revoked, not expired. An open invitation holds a seat."""
    return and_(
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > now,
    )


def invitation_status(invitation: Invitation, now: datetime) -> InvitationStatus:
    if invitation.accepted_at is not None:
        return InvitationStatus.ACCEPTED
    if invitation.revoked_at is not None:
        return InvitationStatus.REVOKED
    if invitation.expires_at <= now:
        return InvitationStatus.EXPIRED
    return InvitationStatus.PENDING


def _invitation_condition(status: InvitationStatus, now: datetime) -> ColumnElement[bool]:
    not_accepted = Invitation.accepted_at.is_(None)
    not_revoked = Invitation.revoked_at.is_(None)
    return {
        InvitationStatus.PENDING: invitation_open(now),
        InvitationStatus.ACCEPTED: Invitation.accepted_at.is_not(None),
        InvitationStatus.REVOKED: and_(not_accepted, Invitation.revoked_at.is_not(None)),
        InvitationStatus.EXPIRED: and_(not_accepted, not_revoked, Invitation.expires_at <= now),
    }[status]


def link_status(link: InviteLink, now: datetime) -> InviteLinkStatus:
    if link.revoked_at is not None:
        return InviteLinkStatus.REVOKED
    if link.max_uses is not None and link.uses >= link.max_uses:
        return InviteLinkStatus.USED_UP
    if link.expires_at <= now:
        return InviteLinkStatus.EXPIRED
    return InviteLinkStatus.ACTIVE


def _link_condition(status: InviteLinkStatus, now: datetime) -> ColumnElement[bool]:
    not_revoked = InviteLink.revoked_at.is_(None)
    used_up = and_(InviteLink.max_uses.is_not(None), InviteLink.uses >= InviteLink.max_uses)
    uses_left = or_(InviteLink.max_uses.is_(None), InviteLink.uses < InviteLink.max_uses)
    return {
        InviteLinkStatus.REVOKED: InviteLink.revoked_at.is_not(None),
        InviteLinkStatus.USED_UP: and_(not_revoked, used_up),
        InviteLinkStatus.EXPIRED: and_(not_revoked, uses_left, InviteLink.expires_at <= now),
        InviteLinkStatus.ACTIVE: and_(not_revoked, uses_left, InviteLink.expires_at > now),
    }[status]


@dataclass(frozen=True)
class Person:
    """Who invited someone or made a link, as the listings name them."""

    id: str
    username: str
    name: str


@dataclass(frozen=True)
class InvitationItem:
    invitation: Invitation
    status: InvitationStatus
    invited_by: Person | None


@dataclass(frozen=True)
class InvitationPage:
    items: list[InvitationItem]
    next_cursor: str | None


@dataclass(frozen=True)
class InviteLinkItem:
    link: InviteLink
    status: InviteLinkStatus
    created_by: Person | None


@dataclass(frozen=True)
class InviteLinkPage:
    items: list[InviteLinkItem]
    next_cursor: str | None


def _person(public_id: str | None, username: str | None, name: str | None) -> Person | None:
    if public_id is None or username is None or name is None:
        return None
    return Person(id=public_id, username=username, name=name)


def _ensure_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput.one("limit", "range", f"must be between 1 and {MAX_LIMIT}")


def _now(session: AsyncSession) -> datetime:
    return services_of(session).clock.now()


async def list_invitations(
    session: AsyncSession,
    *,
    viewer: Actor,
    status: InvitationStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> InvitationPage:
    """Newest first. Reading them takes users.create, like sending them: the list holds
    addresses of people who are not members."""
    viewer.require(Permission.USERS_CREATE)
    _ensure_limit(limit)
    now = _now(session)
    inviter = aliased(User)
    query = cursors.newest_first(
        select(Invitation, inviter.public_id, inviter.username, inviter.name).outerjoin(
            inviter, inviter.id == Invitation.invited_by_id
        ),
        Invitation.id,
        listing="invitations",
        cursor=cursor,
        limit=limit,
    )
    if status is not None:
        query = query.where(_invitation_condition(status, now))
    rows, next_cursor = cursors.cut(
        list(await session.execute(query)),
        limit=limit,
        listing="invitations",
        row_id=lambda r: r[0].id,
    )
    return InvitationPage(
        items=[
            InvitationItem(
                invitation=row[0],
                status=invitation_status(row[0], now),
                invited_by=_person(row[1], row[2], row[3]),
            )
            for row in rows
        ],
        next_cursor=next_cursor,
    )


async def invitation_item(session: AsyncSession, invitation: Invitation) -> InvitationItem:
    """One invitation as the listing shows it (for answers to actions on it)."""
    inviter = (
        await session.get(User, invitation.invited_by_id) if invitation.invited_by_id else None
    )
    return InvitationItem(
        invitation=invitation,
        status=invitation_status(invitation, _now(session)),
        invited_by=Person(inviter.public_id, inviter.username, inviter.name) if inviter else None,
    )


async def list_invite_links(
    session: AsyncSession,
    *,
    viewer: Actor,
    status: InviteLinkStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> InviteLinkPage:
    """Newest first, never with their secrets (only digests are kept)."""
    viewer.require(Permission.USERS_CREATE)
    _ensure_limit(limit)
    now = _now(session)
    creator = aliased(User)
    query = cursors.newest_first(
        select(InviteLink, creator.public_id, creator.username, creator.name).outerjoin(
            creator, creator.id == InviteLink.created_by_id
        ),
        InviteLink.id,
        listing="invite_links",
        cursor=cursor,
        limit=limit,
    )
    if status is not None:
        query = query.where(_link_condition(status, now))
    rows, next_cursor = cursors.cut(
        list(await session.execute(query)),
        limit=limit,
        listing="invite_links",
        row_id=lambda r: r[0].id,
    )
    return InviteLinkPage(
        items=[
            InviteLinkItem(
                link=row[0],
                status=link_status(row[0], now),
                created_by=_person(row[1], row[2], row[3]),
            )
            for row in rows
        ],
        next_cursor=next_cursor,
    )


async def get_invitation(
    session: AsyncSession, *, viewer: Actor, invitation_id: str
) -> InvitationItem:
    viewer.require(Permission.USERS_CREATE)
    invitation = await session.scalar(
        select(Invitation).where(Invitation.public_id == invitation_id)
    )
    if invitation is None:
        raise NotFound(f"no invitation with id {invitation_id}")
    return await invitation_item(session, invitation)


async def get_invite_link(session: AsyncSession, *, viewer: Actor, link_id: str) -> InviteLinkItem:
    """One link as the listing shows it, without its secret."""
    viewer.require(Permission.USERS_CREATE)
    link = await session.scalar(select(InviteLink).where(InviteLink.public_id == link_id))
    if link is None:
        raise NotFound(f"no invite link with id {link_id}")
    creator = await session.get(User, link.created_by_id) if link.created_by_id else None
    return InviteLinkItem(
        link=link,
        status=link_status(link, _now(session)),
        created_by=Person(creator.public_id, creator.username, creator.name) if creator else None,
    )
