"""Invitations by email, shareable invite links, and joining the workspace through either.

Each carries a random secret, the last part of its join URL (`{public_url}/join/{secret}`);
the database keeps only its SHA-256 digest, the outbox keeps it sealed, and a link's secret is
shown once, to its maker. An open invitation (not accepted, revoked or expired) holds a seat
(actions/seats.py counts it), so inviting more new addresses than there are free seats is
refused; a link holds none and is checked against the seats when someone joins through it.
The roles of an invitation or link are checked against its maker's right to grant them when
it is made (and resent): joining grants them with that authority.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic_core import PydanticCustomError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import seats
from userdesk.actions.audit import AuditEvent, record, record_for_user
from userdesk.actions.auth import open_session
from userdesk.actions.context import Actor
from userdesk.actions.inputs import (
    InvitationCreate,
    InviteLinkCreate,
    JoinRequest,
    UserCreate,
    email_key,
    normalised_email,
)
from userdesk.actions.outbox import email_warning, enqueue_email
from userdesk.actions.rules import ensure_can_grant, ensure_roles_fit, permissions_of, roles_named
from userdesk.actions.users import _create
from userdesk.errors import Conflict, InvalidInput, InvitationInvalid, NotFound
from userdesk.models import Invitation, InviteLink, Role, User, UserStatus, UserType, Workspace
from userdesk.queries.invitations import (
    InvitationStatus,
    InviteLinkStatus,
    invitation_open,
    invitation_status,
    link_status,
)
from userdesk.queries.workspace import get_workspace
from userdesk.security.permissions import ALL_PERMISSIONS, DEFAULT_HUMAN_ROLE, Permission
from userdesk.security.randomness import token_digest
from userdesk.services import services_of

INVITED = "invited"
REINVITED = "reinvited"
MEMBER = "member"
INVALID = "invalid"
DUPLICATE = "duplicate in this request"
ALREADY_MEMBER = "a user with this email address already exists"
NOT_VALID = (
    "this invitation link is not valid: check that the whole link was copied, "
    "or ask for a new invitation"
)


@dataclass(frozen=True)
class InviteResult:
    """What became of one address of an invitation request, in the order given."""

    email: str
    status: str
    reason: str | None = None


@dataclass(frozen=True)
class InviteOutcome:
    results: list[InviteResult]
    warning: str | None


@dataclass(frozen=True)
class CreatedLink:
    link: InviteLink
    url: str


@dataclass(frozen=True)
class Invite:
    """What a join token stands for: an invitation or an invite link."""

    invitation: Invitation | None = None
    link: InviteLink | None = None

    @property
    def kind(self) -> Literal["invitation", "link"]:
        return "invitation" if self.invitation is not None else "link"

    @property
    def roles(self) -> list[str]:
        source = self.invitation or self.link
        assert source is not None
        return list(source.roles)

    @property
    def expires_at(self) -> datetime:
        source = self.invitation or self.link
        assert source is not None
        return source.expires_at


@dataclass(frozen=True)
class JoinInfo:
    workspace: Workspace
    invite: Invite


@dataclass(frozen=True)
class Joined:
    """The new user, and the session cookie's secret when they were signed in (not when the
    workspace requires a verified address they have not verified yet)."""

    user: User
    secret: str | None


def join_url(session: AsyncSession, secret: str) -> str:
    return f"{services_of(session).public_url}/join/{secret}"


def _require_inviting(actor: Actor, names: list[str] | None) -> list[str]:
    """users.create, and roles.assign for any role but the default one. Checked before any
    lock is taken."""
    actor.require(Permission.USERS_CREATE)
    wanted = names or [DEFAULT_HUMAN_ROLE]
    if wanted != [DEFAULT_HUMAN_ROLE]:
        actor.require(Permission.ROLES_ASSIGN)
    return wanted


async def _grantable(session: AsyncSession, actor: Actor, names: list[str]) -> list[Role]:
    roles = await roles_named(session, names, field="roles")
    ensure_can_grant(actor, roles)
    ensure_roles_fit(UserType.HUMAN, roles)
    return roles


async def _ensure_outranks(
    session: AsyncSession, actor: Actor, names: list[str], doing: str
) -> None:
    """Nobody handles an invitation or link whose roles carry a permission they lack."""
    roles = await session.scalars(select(Role).where(Role.name.in_(names)))
    actor.require_all(permissions_of(roles), doing=doing)


async def _inviter_name(session: AsyncSession, actor: Actor) -> str | None:
    inviter = await session.get(User, actor.user_id) if actor.user_id else None
    return inviter.name if inviter else None


async def _send(
    session: AsyncSession, invitation: Invitation, *, inviter: str | None, workspace: Workspace
) -> None:
    """Give the invitation a new secret and expiry and email its link; older links die."""
    services = services_of(session)
    now = services.clock.now()
    secret = services.randomness.invitation_secret()
    invitation.digest = token_digest(secret)
    invitation.expires_at = now + timedelta(days=workspace.invitation_expiry_days)
    invitation.last_sent_at = now
    await enqueue_email(
        session,
        template="invitation",
        to=invitation.email,
        context={
            "email": invitation.email,
            "roles": list(invitation.roles),
            "invited_by": inviter,
            "expires_at": invitation.expires_at.isoformat(),
        },
        secrets={"link": join_url(session, secret)},
    )


async def _record_invitation(
    session: AsyncSession,
    actor: Actor,
    event: AuditEvent,
    invitation: Invitation,
    changes: dict[str, Any],
) -> None:
    await record(
        session,
        actor=actor,
        event=event,
        target_type="invitation",
        target_id=invitation.public_id,
        target_name=invitation.email,
        changes=changes,
    )


async def _send_again(
    session: AsyncSession,
    actor: Actor,
    invitation: Invitation,
    *,
    roles: list[str],
    inviter: str | None,
    workspace: Workspace,
) -> None:
    """A pending or expired invitation, with these roles, a new link and a new expiry."""
    now = services_of(session).clock.now()
    changes: dict[str, Any] = {}
    status = invitation_status(invitation, now)
    if status is not InvitationStatus.PENDING:
        changes["status"] = {"before": status.value, "after": InvitationStatus.PENDING.value}
    if roles != list(invitation.roles):
        changes["roles"] = {"before": list(invitation.roles), "after": roles}
    before = invitation.expires_at
    invitation.roles = roles
    invitation.sent_count += 1
    await _send(session, invitation, inviter=inviter, workspace=workspace)
    await session.flush()
    changes["expires_at"] = {
        "before": before.isoformat(),
        "after": invitation.expires_at.isoformat(),
    }
    changes["email"] = {"before": None, "after": "queued"}
    await _record_invitation(session, actor, AuditEvent.INVITATION_RESENT, invitation, changes)


def _classify(emails: list[str]) -> tuple[list[tuple[str, str | None, str | None]], dict[str, str]]:
    """Each given address as (shown, key or None, reason it is invalid), and the valid
    addresses by key. A repeated address is invalid after its first occurrence."""
    entries: list[tuple[str, str | None, str | None]] = []
    valid: dict[str, str] = {}
    for given in emails:
        try:
            address = normalised_email(given)
        except PydanticCustomError as exc:
            entries.append((given.strip(), None, exc.message()))
            continue
        key = email_key(address)
        if key in valid:
            entries.append((address, None, DUPLICATE))
            continue
        valid[key] = address
        entries.append((address, key, None))
    return entries, valid


async def invite(session: AsyncSession, *, actor: Actor, data: InvitationCreate) -> InviteOutcome:
    """Invite each address with the roles: a new invitation (invited), or, when the address
    has an open one, that one with a new link, expiry and roles, emailed again (reinvited).
    Members and invalid or repeated addresses are reported, not invited. New invitations
    need free seats, all of them or none is sent."""
    wanted = _require_inviting(actor, data.roles)
    workspace = await seats.lock_workspace(session)
    roles = await _grantable(session, actor, wanted)
    role_names = [role.name for role in roles]
    now = services_of(session).clock.now()
    entries, valid = _classify(data.emails)
    keys = list(valid)
    members = set(await session.scalars(select(User.email_key).where(User.email_key.in_(keys))))
    pending: dict[str, Invitation] = {}
    for invitation in await session.scalars(
        select(Invitation)
        .where(Invitation.email_key.in_(keys), invitation_open(now))
        .order_by(Invitation.id)
        .with_for_update()
    ):
        pending[invitation.email_key] = invitation  # the newest, if ever several
    new_keys = [key for key in keys if key not in members and key not in pending]
    if new_keys:
        await seats.ensure_free_seat(session, workspace, needed=len(new_keys))

    inviter = await _inviter_name(session, actor)
    inviter_id = actor.user_id
    results: list[InviteResult] = []
    for shown, key, reason in entries:
        if key is None:
            results.append(InviteResult(shown, INVALID, reason))
        elif key in members:
            results.append(InviteResult(shown, MEMBER, ALREADY_MEMBER))
        elif key in pending:
            await _send_again(
                session,
                actor,
                pending[key],
                roles=role_names,
                inviter=inviter,
                workspace=workspace,
            )
            results.append(InviteResult(shown, REINVITED))
        else:
            invitation = Invitation(
                public_id=services_of(session).randomness.public_id(),
                email=valid[key],
                email_key=key,
                roles=role_names,
                invited_by_id=inviter_id,
                created_at=now,
                sent_count=1,
            )
            await _send(session, invitation, inviter=inviter, workspace=workspace)
            session.add(invitation)
            await _record_invitation(
                session,
                actor,
                AuditEvent.INVITATION_SENT,
                invitation,
                {
                    "email": {"before": None, "after": invitation.email},
                    "roles": {"before": None, "after": role_names},
                    "expires_at": {"before": None, "after": invitation.expires_at.isoformat()},
                },
            )
            results.append(InviteResult(shown, INVITED))
    await session.flush()
    sent = any(r.status in (INVITED, REINVITED) for r in results)
    return InviteOutcome(results=results, warning=email_warning(workspace) if sent else None)


async def _lock_invitation(session: AsyncSession, invitation_id: str) -> Invitation:
    invitation = await session.scalar(
        select(Invitation)
        .where(Invitation.public_id == invitation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if invitation is None:
        raise NotFound(f"no invitation with id {invitation_id}")
    return invitation


async def resend_invitation(
    session: AsyncSession, *, actor: Actor, invitation_id: str
) -> tuple[Invitation, str | None]:
    """A pending or expired invitation with a new link and a new expiry, emailed again (the
    old link dies). An expired one takes a seat again. Returns it and the email warning."""
    actor.require(Permission.USERS_CREATE)
    workspace = await seats.lock_workspace(session)
    invitation = await _lock_invitation(session, invitation_id)
    now = services_of(session).clock.now()
    status = invitation_status(invitation, now)
    if status not in (InvitationStatus.PENDING, InvitationStatus.EXPIRED):
        raise Conflict(
            f"this invitation was {status.value}; only pending or expired ones are sent again",
            field="status",
        )
    member = await session.scalar(select(User.id).where(User.email_key == invitation.email_key))
    if member is not None:
        raise Conflict(f"{invitation.email}: {ALREADY_MEMBER}", field="email")
    _require_inviting(actor, invitation.roles)
    await _grantable(session, actor, invitation.roles)
    if status is InvitationStatus.EXPIRED:
        await seats.ensure_free_seat(session, workspace)
    await _send_again(
        session,
        actor,
        invitation,
        roles=list(invitation.roles),
        inviter=await _inviter_name(session, actor),
        workspace=workspace,
    )
    return invitation, email_warning(workspace)


async def revoke_invitation(session: AsyncSession, *, actor: Actor, invitation_id: str) -> None:
    """Its link dies and its seat frees. Revoking a revoked invitation changes nothing; an
    accepted one cannot be (its user is managed as any other)."""
    actor.require(Permission.USERS_CREATE)
    invitation = await _lock_invitation(session, invitation_id)
    now = services_of(session).clock.now()
    status = invitation_status(invitation, now)
    if status is InvitationStatus.REVOKED:
        return
    if status is InvitationStatus.ACCEPTED:
        raise Conflict(
            "this invitation was accepted; deactivate or delete its user instead", field="status"
        )
    await _ensure_outranks(
        session, actor, invitation.roles, doing=f"revoking the invitation of {invitation.email}"
    )
    invitation.revoked_at = now
    await session.flush()
    await _record_invitation(
        session,
        actor,
        AuditEvent.INVITATION_REVOKED,
        invitation,
        {"status": {"before": status.value, "after": InvitationStatus.REVOKED.value}},
    )


async def create_invite_links(
    session: AsyncSession, *, actor: Actor, data: InviteLinkCreate
) -> list[CreatedLink]:
    """`count` new links, each with its own secret, shown in this answer only."""
    wanted = _require_inviting(actor, data.roles)
    roles = await _grantable(session, actor, wanted)
    role_names = [role.name for role in roles]
    services = services_of(session)
    now = services.clock.now()
    created = []
    for _ in range(data.count):
        secret = services.randomness.invitation_secret()
        link = InviteLink(
            public_id=services.randomness.public_id(),
            digest=token_digest(secret),
            roles=role_names,
            created_by_id=actor.user_id,
            created_at=now,
            expires_at=now + timedelta(days=data.expires_in_days),
            max_uses=data.max_uses,
            uses=0,
        )
        session.add(link)
        await record(
            session,
            actor=actor,
            event=AuditEvent.INVITE_LINK_CREATED,
            target_type="invite_link",
            target_id=link.public_id,
            target_name=None,
            changes={
                "roles": {"before": None, "after": role_names},
                "expires_at": {"before": None, "after": link.expires_at.isoformat()},
                "max_uses": {"before": None, "after": data.max_uses},
            },
        )
        created.append(CreatedLink(link=link, url=join_url(session, secret)))
    await session.flush()
    return created


async def revoke_invite_link(session: AsyncSession, *, actor: Actor, link_id: str) -> None:
    """Nobody joins through the link any more. Revoking it again changes nothing."""
    actor.require(Permission.USERS_CREATE)
    link = await session.scalar(
        select(InviteLink)
        .where(InviteLink.public_id == link_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if link is None:
        raise NotFound(f"no invite link with id {link_id}")
    if link.revoked_at is not None:
        return
    await _ensure_outranks(session, actor, link.roles, doing="revoking this invite link")
    status = link_status(link, services_of(session).clock.now())
    link.revoked_at = services_of(session).clock.now()
    await session.flush()
    await record(
        session,
        actor=actor,
        event=AuditEvent.INVITE_LINK_REVOKED,
        target_type="invite_link",
        target_id=link.public_id,
        target_name=None,
        changes={"status": {"before": status.value, "after": InviteLinkStatus.REVOKED.value}},
    )


async def _invite_for(session: AsyncSession, token: str, *, lock: bool) -> Invite:
    """The invitation or link behind a join token while it can be used, or InvitationInvalid
    saying why not. Locked, the row stays so until the join commits: of two joins through a
    link with one use left, the second waits, then finds it used up."""
    digest = token_digest(token)
    invitation_query = select(Invitation).where(Invitation.digest == digest)
    link_query = select(InviteLink).where(InviteLink.digest == digest)
    if lock:
        invitation_query = invitation_query.with_for_update()
        link_query = link_query.with_for_update()
    now = services_of(session).clock.now()
    invite: Invite
    invitation = await session.scalar(invitation_query.execution_options(populate_existing=True))
    if invitation is not None:
        status = invitation_status(invitation, now)
        if status is InvitationStatus.ACCEPTED:
            raise InvitationInvalid(
                "this invitation was already accepted; sign in instead", reason="used"
            )
        if status is InvitationStatus.REVOKED:
            raise InvitationInvalid(
                "this invitation was withdrawn; ask for a new one if you still need it",
                reason="revoked",
            )
        if status is InvitationStatus.EXPIRED:
            raise InvitationInvalid(
                "this invitation has expired; ask whoever invited you to send it again",
                reason="expired",
            )
        member = await session.scalar(select(User.id).where(User.email_key == invitation.email_key))
        if member is not None:
            raise InvitationInvalid(
                f"an account with the address {invitation.email} already exists; sign in instead",
                reason="member",
            )
        invite = Invite(invitation=invitation)
    else:
        link = await session.scalar(link_query.execution_options(populate_existing=True))
        if link is None:
            raise InvitationInvalid(NOT_VALID, reason="unknown")
        status_of_link = link_status(link, now)
        if status_of_link is InviteLinkStatus.REVOKED:
            raise InvitationInvalid(
                "this invite link was withdrawn; ask for a new one", reason="revoked"
            )
        if status_of_link is InviteLinkStatus.USED_UP:
            raise InvitationInvalid(
                "this invite link has been used as many times as it allows; ask for a new one",
                reason="used",
            )
        if status_of_link is InviteLinkStatus.EXPIRED:
            raise InvitationInvalid(
                "this invite link has expired; ask for a new one", reason="expired"
            )
        invite = Invite(link=link)
    existing = set(await session.scalars(select(Role.name).where(Role.name.in_(invite.roles))))
    if set(invite.roles) - existing:
        raise InvitationInvalid(
            f"this {'invitation' if invite.kind == 'invitation' else 'invite link'} grants a "
            "role that no longer exists; ask for a new one",
            reason="role_deleted",
        )
    return invite


async def join_info(session: AsyncSession, *, token: str) -> JoinInfo:
    """What the join page shows before its form: whether the token can be used, and for a
    link whether a seat is free (an invitation holds its own)."""
    invite = await _invite_for(session, token, lock=False)
    workspace = await get_workspace(session)
    if invite.link is not None:
        await seats.ensure_free_seat(session, workspace)
    return JoinInfo(workspace=workspace, invite=invite)


async def _close_invitations_of(session: AsyncSession, key: str, now: datetime) -> list[Invitation]:
    """Accept every open invitation of the address, before its user takes a seat: the seats
    they held free in the same transaction, so nobody counts twice."""
    invitations = list(
        await session.scalars(
            select(Invitation)
            .where(Invitation.email_key == key, invitation_open(now))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    for invitation in invitations:
        invitation.accepted_at = now
    await session.flush()
    return invitations


async def join(
    session: AsyncSession,
    *,
    token: str,
    data: JoinRequest,
    ip: str | None,
    user_agent: str | None,
) -> Joined:
    """Create an active user through an invitation (its address, verified) or an invite link
    (an address given, unverified), with its roles, under create_user's rules (policy,
    uniqueness, seats); then sign them in. All or nothing."""
    workspace = await seats.lock_workspace(session)
    invite = await _invite_for(session, token, lock=True)
    now = services_of(session).clock.now()
    if invite.invitation is not None:
        if data.email is not None and email_key(data.email) != invite.invitation.email_key:
            raise InvalidInput.one(
                "email",
                "invitation_email",
                f"the invitation is for {invite.invitation.email}; leave email out",
            )
        email, verified = invite.invitation.email, True
        creator_id = invite.invitation.invited_by_id
    else:
        assert invite.link is not None
        if data.email is None:
            raise InvalidInput.one(
                "email", "required", "is required when joining through an invite link"
            )
        email, verified = data.email, False
        creator_id = invite.link.created_by_id
        invite.link.uses += 1
    accepted = await _close_invitations_of(session, email_key(email), now)
    # The joining person has no account to act with yet; the grant is the inviter's, checked
    # when the invitation or link was made.
    joining = Actor(
        user_id=None,
        public_id=None,
        name=data.username,
        permissions=ALL_PERMISSIONS,
        ip=ip,
        user_agent=user_agent,
    )
    user = await _create(
        session,
        joining,
        UserCreate(
            name=data.name,
            username=data.username,
            email=email,
            email_verified=verified,
            password=data.password,
            roles=invite.roles,
        ),
        UserStatus.ACTIVE,
    )
    user.created_by = await session.get(User, creator_id) if creator_id else None
    for invitation in accepted:
        invitation.accepted_user_id = user.id
    secret = None
    if user.email_verified or not workspace.email_verification_required:
        user.last_login_at = now
        secret = open_session(session, user, workspace=workspace, ip=ip, user_agent=user_agent)
    await session.flush()

    me = Actor(
        user_id=user.id,
        public_id=user.public_id,
        name=user.username,
        permissions=frozenset(),
        ip=ip,
        user_agent=user_agent,
    )
    for invitation in accepted:
        await _record_invitation(
            session,
            me,
            AuditEvent.INVITATION_ACCEPTED,
            invitation,
            {
                "status": {"before": "pending", "after": "accepted"},
                "user": {"before": None, "after": user.public_id},
            },
        )
    via = invite.invitation or invite.link
    assert via is not None
    await record_for_user(
        session,
        actor=me,
        event=AuditEvent.USER_JOINED,
        user=user,
        changes={
            "via": {"before": None, "after": "invitation" if invite.invitation else "invite_link"},
            "invite": {"before": None, "after": via.public_id},
            "roles": {"before": None, "after": invite.roles},
        },
    )
    if secret is not None:
        await record_for_user(
            session,
            actor=me,
            event=AuditEvent.SIGNED_IN,
            user=user,
            changes={
                "last_login_at": {"before": None, "after": now.isoformat()},
                "via": {"before": None, "after": "join"},
            },
        )
    return Joined(user=user, secret=secret)
