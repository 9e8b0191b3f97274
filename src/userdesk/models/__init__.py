"""Every table, imported here so Alembic and the tests see one complete metadata."""

from userdesk.models.audit import AuditEntry
from userdesk.models.avatars import AvatarImage
from userdesk.models.base import Base
from userdesk.models.invitations import Invitation, InviteLink
from userdesk.models.outbox import OutboxMessage
from userdesk.models.security import (
    E2EKeys,
    LinkPurpose,
    OneTimeLink,
    RecoveryCode,
    SignInThrottle,
)
from userdesk.models.sessions import LoginSession
from userdesk.models.tokens import ApiToken
from userdesk.models.users import AvatarKind, Role, User, UserStatus, UserType, user_roles
from userdesk.models.webhooks import WebhookDelivery, WebhookEndpoint
from userdesk.models.workspace import WORKSPACE_ID, UserCount, Workspace

__all__ = [
    "WORKSPACE_ID",
    "ApiToken",
    "AuditEntry",
    "AvatarImage",
    "AvatarKind",
    "Base",
    "E2EKeys",
    "Invitation",
    "InviteLink",
    "LinkPurpose",
    "OneTimeLink",
    "RecoveryCode",
    "SignInThrottle",
    "LoginSession",
    "OutboxMessage",
    "Role",
    "User",
    "UserCount",
    "UserStatus",
    "UserType",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Workspace",
    "user_roles",
]
