"""How userdesk shows its objects to the outside (REST and the CLI's JSON output)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import segno
from pydantic import BaseModel, Field

from userdesk.models import (
    ApiToken,
    AuditEntry,
    E2EKeys,
    LoginSession,
    OutboxMessage,
    Role,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    Workspace,
)
from userdesk.queries.invitations import InvitationItem, InviteLinkItem, Person
from userdesk.queries.users import UserPage, UserWindow
from userdesk.queries.workspace import Seats
from userdesk.security.password_policy import PasswordPolicy


class AvatarView(BaseModel):
    kind: str
    url: str | None


class DirectoryView(BaseModel):
    """What the organisation's directory says of the user (set over SCIM, or by admins)."""

    external_id: str | None
    name_derived: bool
    formatted_name: str | None
    title: str | None
    employment_type: str | None
    locale: str | None
    email_type: str | None
    email_primary: bool | None
    employee_number: str | None
    department: str | None
    organization: str | None
    manager: str | None

    @classmethod
    def of(cls, user: User) -> DirectoryView:
        return cls(
            external_id=user.external_id,
            name_derived=user.name_derived,
            formatted_name=user.formatted_name,
            title=user.title,
            employment_type=user.employment_type,
            locale=user.locale,
            email_type=user.email_type,
            email_primary=user.email_primary,
            employee_number=user.employee_number,
            department=user.department,
            organization=user.organization,
            manager=user.manager.public_id if user.manager else None,
        )


class UserView(BaseModel):
    id: str
    username: str
    email: str
    email_verified: bool
    name: str
    given_name: str | None
    family_name: str | None
    nickname: str | None
    bio: str | None
    status_message: str | None
    voip_extension: str | None
    timezone: str | None
    avatar: AvatarView
    type: str
    status: str
    roles: list[str]
    require_password_change: bool
    has_password: bool
    # Whether the user has TOTP 2FA on, and end-to-end encryption keys stored: the Users
    # page offers "Reset TOTP" and "Reset E2EE key" only when these are true.
    two_factor_enabled: bool
    e2e_keys: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
    deactivated_at: datetime | None
    created_by: str | None
    directory: DirectoryView
    # Only in answers to actions that emailed the user, when no SMTP server is configured:
    # the email is in the mail catcher, not on its way.
    warning: str | None = None

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(
            id=user.public_id,
            username=user.username,
            email=user.email,
            email_verified=user.email_verified,
            name=user.name,
            given_name=user.given_name,
            family_name=user.family_name,
            nickname=user.nickname,
            bio=user.bio,
            status_message=user.status_message,
            voip_extension=user.voip_extension,
            timezone=user.timezone,
            avatar=AvatarView(kind=user.avatar_kind.value, url=user.avatar_url),
            type=user.type.value,
            status=user.status.value,
            roles=sorted(role.name for role in user.roles),
            require_password_change=user.require_password_change,
            has_password=user.password_hash is not None,
            two_factor_enabled=user.totp_enabled_at is not None,
            e2e_keys=user.e2e_keys_at is not None,
            created_at=user.created_at,
            updated_at=user.updated_at,
            last_login_at=user.last_login_at,
            deactivated_at=user.deactivated_at,
            created_by=user.created_by.public_id if user.created_by else None,
            directory=DirectoryView.of(user),
        )


class SignedInView(BaseModel):
    user: UserView


class SessionView(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool

    @classmethod
    def of(cls, login_session: LoginSession, *, current_digest: str | None) -> SessionView:
        return cls(
            id=login_session.public_id,
            created_at=login_session.created_at,
            last_seen_at=login_session.last_seen_at,
            expires_at=login_session.expires_at,
            ip=login_session.ip,
            user_agent=login_session.user_agent,
            current=login_session.digest == current_digest,
        )


class SessionListView(BaseModel):
    items: list[SessionView]


class UserCounts(BaseModel):
    all: int
    pending: int
    active: int
    deactivated: int


class UserListView(BaseModel):
    items: list[UserView]
    next_cursor: str | None
    prev_cursor: str | None = Field(
        None, description="For `before`: the page ending just before this one (none on the first)."
    )
    counts: UserCounts
    counts_estimated: bool = Field(
        False,
        description="The counts are estimates (rounded to two figures): a search or role "
        "filter matched too many users to count each at once.",
    )
    seats: SeatsView | None = Field(
        None, description="Seat usage, when the caller may read it (users.list API only)."
    )

    @classmethod
    def of(cls, page: UserPage) -> UserListView:
        return cls(
            items=[UserView.of(u) for u in page.items],
            next_cursor=page.next_cursor,
            counts=UserCounts(**page.counts),
            counts_estimated=page.counts_estimated,
        )

    @classmethod
    def of_window(cls, window: UserWindow, seats: Seats | None) -> UserListView:
        return cls(
            items=[UserView.of(u) for u in window.items],
            next_cursor=window.after,
            prev_cursor=window.before,
            counts=UserCounts(**window.counts),
            counts_estimated=window.counts_estimated,
            seats=SeatsView.of(seats) if seats else None,
        )


class RoleView(BaseModel):
    name: str
    id: str = Field(description="The role's id as a SCIM group: it never changes.")
    display_name: str = Field(description="The role's name as a SCIM group (any text).")
    external_id: str | None
    description: str
    permissions: list[str]
    built_in: bool
    users: int

    @classmethod
    def of(cls, role: Role, holders: int) -> RoleView:
        return cls(
            name=role.name,
            id=role.public_id,
            display_name=role.display_name,
            external_id=role.external_id,
            description=role.description,
            permissions=sorted(role.permissions),
            built_in=role.built_in,
            users=holders,
        )


class RoleListView(BaseModel):
    items: list[RoleView]


class SeatsView(BaseModel):
    used: int
    limit: int | None
    available: int | None

    @classmethod
    def of(cls, seats: Seats) -> SeatsView:
        return cls(used=seats.used, limit=seats.limit, available=seats.available)


class SettingsView(BaseModel):
    name: str
    seat_limit: int | None
    session_idle_minutes: int
    session_max_hours: int
    password_min_length: int
    password_max_length: int
    password_max_repeated: int | None
    password_require_lowercase: bool
    password_require_uppercase: bool
    password_require_digit: bool
    password_require_symbol: bool
    password_reject_common: bool
    password_reject_personal: bool
    email_verification_required: bool
    two_factor_required_roles: list[str]
    lockout_threshold: int
    lockout_minutes: int
    ip_failure_limit: int
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: str
    smtp_username: str | None
    # The SMTP password is write-only: only whether one is set is ever shown.
    smtp_password_set: bool
    mail_from_address: str | None
    mail_from_name: str | None
    mail_max_attempts: int
    invitation_expiry_days: int
    # Whether emails leave the server; false means the built-in mail catcher keeps them.
    email_configured: bool

    @classmethod
    def of(cls, workspace: Workspace) -> SettingsView:
        computed = {
            "smtp_password_set": workspace.smtp_password is not None,
            "email_configured": bool(workspace.smtp_host),
        }
        return cls.model_validate(
            {
                field: computed[field] if field in computed else getattr(workspace, field)
                for field in cls.model_fields
            }
        )


class PasswordRuleView(BaseModel):
    rule: str
    passed: bool
    message: str


class PasswordCheckView(BaseModel):
    """Each rule of the workspace's policy, judged for the candidate; `ok` when all pass."""

    ok: bool
    rules: list[PasswordRuleView]


class AuditActor(BaseModel):
    id: str | None
    name: str


class AuditTarget(BaseModel):
    type: str
    id: str | None
    name: str | None


class AuditEntryView(BaseModel):
    id: int
    at: datetime
    actor: AuditActor
    action: str
    target: AuditTarget
    changes: dict[str, Any]
    ip: str | None
    user_agent: str | None

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryView:
        return cls(
            id=entry.id,
            at=entry.at,
            actor=AuditActor(id=entry.actor_id, name=entry.actor_name),
            action=entry.action,
            target=AuditTarget(type=entry.target_type, id=entry.target_id, name=entry.target_name),
            changes=entry.changes,
            ip=entry.ip,
            user_agent=entry.user_agent,
        )


class AuditListView(BaseModel):
    items: list[AuditEntryView]
    next_cursor: str | None


class TokenView(BaseModel):
    id: str
    name: str
    hint: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    # None: everything its user may do; otherwise this subset of it.
    permissions: list[str] | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenView:
        return cls(
            id=token.public_id,
            name=token.name,
            hint=token.hint,
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
            permissions=token.permissions,
        )


class TokenListView(BaseModel):
    items: list[TokenView]


class CreatedTokenView(BaseModel):
    """The token's secret is in this answer only; it is stored as a digest."""

    token: TokenView
    secret: str


class PasswordPolicyView(BaseModel):
    min_length: int
    max_length: int
    max_repeated: int | None
    require_lowercase: bool
    require_uppercase: bool
    require_digit: bool
    require_symbol: bool
    reject_common: bool
    reject_personal: bool

    @classmethod
    def of(cls, policy: PasswordPolicy) -> PasswordPolicyView:
        return cls.model_validate(dataclasses.asdict(policy))


class LockoutView(BaseModel):
    locked: bool
    locked_until: datetime | None
    failures: int


class E2EKeysView(BaseModel):
    public_key: str
    private_key: str
    updated_at: datetime

    @classmethod
    def of(cls, keys: E2EKeys) -> E2EKeysView:
        return cls(
            public_key=keys.public_key, private_key=keys.private_key, updated_at=keys.updated_at
        )


class PublicKeyView(BaseModel):
    user_id: str
    public_key: str
    updated_at: datetime


class TwoFactorStatusView(BaseModel):
    enabled: bool
    enabled_at: datetime | None
    recovery_codes_left: int
    # A role of the user requires 2FA (a bot is never required to).
    required: bool


class TwoFactorSetupView(BaseModel):
    """The pending secret, as text and as a QR code of the otpauth:// URI, shown once."""

    secret: str
    otpauth_uri: str
    qr_svg: str

    @classmethod
    def of(cls, secret: str, uri: str) -> TwoFactorSetupView:
        qr_svg = segno.make(uri, error="m").svg_inline(scale=4, title="Two-factor key")
        return cls(secret=secret, otpauth_uri=uri, qr_svg=qr_svg)


class RecoveryCodesView(BaseModel):
    """Single-use recovery codes, shown once: only their digests are kept."""

    recovery_codes: list[str]


class AcceptedView(BaseModel):
    """A request taken (202); what was sent, where saying so reveals nothing."""

    detail: str


class SentView(AcceptedView):
    """An email sent for a signed-in caller; `warning` when it cannot leave the server."""

    warning: str | None = None


class LinkFollowedView(BaseModel):
    """The user a one-time link acted on (a password reset, a verified email)."""

    user: UserView


class ResetLinkView(BaseModel):
    valid: bool
    username: str
    expires_at: datetime


class InvitationResultView(BaseModel):
    """One address of an invitation request: invited, reinvited, member or invalid."""

    email: str
    status: str
    reason: str | None


class InvitationsSentView(BaseModel):
    results: list[InvitationResultView]
    warning: str | None


class PersonView(BaseModel):
    id: str
    username: str
    name: str

    @classmethod
    def of(cls, person: Person | None) -> PersonView | None:
        if person is None:
            return None
        return cls(id=person.id, username=person.username, name=person.name)


class InvitationView(BaseModel):
    id: str
    email: str
    roles: list[str]
    status: str
    invited_by: PersonView | None
    created_at: datetime
    expires_at: datetime
    last_sent_at: datetime
    sent_count: int
    accepted_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, item: InvitationItem) -> InvitationView:
        invitation = item.invitation
        return cls(
            id=invitation.public_id,
            email=invitation.email,
            roles=list(invitation.roles),
            status=item.status.value,
            invited_by=PersonView.of(item.invited_by),
            created_at=invitation.created_at,
            expires_at=invitation.expires_at,
            last_sent_at=invitation.last_sent_at,
            sent_count=invitation.sent_count,
            accepted_at=invitation.accepted_at,
            revoked_at=invitation.revoked_at,
        )


class InvitationListView(BaseModel):
    items: list[InvitationView]
    next_cursor: str | None


class InvitationResentView(BaseModel):
    invitation: InvitationView
    warning: str | None


class InviteLinkView(BaseModel):
    """An invite link as listed: never its secret, which is shown once, when it is made."""

    id: str
    roles: list[str]
    status: str
    created_by: PersonView | None
    created_at: datetime
    expires_at: datetime
    max_uses: int | None
    uses: int
    revoked_at: datetime | None

    @classmethod
    def of(cls, item: InviteLinkItem) -> InviteLinkView:
        link = item.link
        return cls(
            id=link.public_id,
            roles=list(link.roles),
            status=item.status.value,
            created_by=PersonView.of(item.created_by),
            created_at=link.created_at,
            expires_at=link.expires_at,
            max_uses=link.max_uses,
            uses=link.uses,
            revoked_at=link.revoked_at,
        )


class InviteLinkListView(BaseModel):
    items: list[InviteLinkView]
    next_cursor: str | None


class CreatedInviteLinkView(BaseModel):
    """A new link with its URL, which holds the secret: shown in this answer only."""

    id: str
    url: str
    expires_at: datetime
    max_uses: int | None
    uses: int
    roles: list[str]


class CreatedInviteLinksView(BaseModel):
    links: list[CreatedInviteLinkView]


class JoinInfoView(BaseModel):
    """What the join page needs before its form; `email` is the invited address (null for
    an invite link, whose form asks for one)."""

    workspace: str
    kind: str
    email: str | None
    expires_at: datetime
    password_policy: PasswordPolicyView


class JoinedView(BaseModel):
    """The new user; `signed_in` is false when the workspace requires a verified address
    and theirs is not yet (a verification link was emailed)."""

    user: UserView
    signed_in: bool


class WebhookView(BaseModel):
    id: str
    url: str
    description: str
    events: list[str]
    active: bool
    allow_private_network: bool
    created_at: datetime
    updated_at: datetime
    created_by: str | None

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookView:
        return cls(
            id=endpoint.public_id,
            url=endpoint.url,
            description=endpoint.description,
            events=list(endpoint.events),
            active=endpoint.active,
            allow_private_network=endpoint.allow_private_network,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
            created_by=endpoint.created_by,
        )


class WebhookListView(BaseModel):
    items: list[WebhookView]


class RegisteredWebhookView(BaseModel):
    """`secret` is set when the server made (or rotated) it: in this answer only."""

    webhook: WebhookView
    secret: str | None


class WebhookEventsView(BaseModel):
    events: list[str]


class DeliveryView(BaseModel):
    id: int
    event_id: str
    event_type: str
    # queued (waiting for its next attempt), delivered (a 2xx answer) or failed (gave up)
    status: str
    attempts: int
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    response_status: int | None
    response_body: str | None
    duration_ms: int | None
    last_error: str | None
    body: str

    @classmethod
    def of(cls, delivery: WebhookDelivery, row: OutboxMessage) -> DeliveryView:
        return cls(
            id=delivery.id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            status=row.status,
            attempts=row.attempts,
            created_at=delivery.created_at,
            last_attempt_at=delivery.last_attempt_at,
            next_attempt_at=row.next_attempt_at if row.status == "queued" else None,
            delivered_at=row.sent_at,
            response_status=delivery.response_status,
            response_body=delivery.response_body,
            duration_ms=delivery.duration_ms,
            last_error=row.last_error,
            body=delivery.body,
        )


class DeliveryListView(BaseModel):
    items: list[DeliveryView]
    next_cursor: str | None
