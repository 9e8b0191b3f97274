"""The permission catalogue and the built-in roles: one place each."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    USERS_READ = "users.read"
    USERS_CREATE = "users.create"
    USERS_EDIT = "users.edit"
    USERS_DEACTIVATE = "users.deactivate"
    USERS_DELETE = "users.delete"
    USERS_RESET_CREDENTIALS = "users.reset_credentials"
    ROLES_ASSIGN = "roles.assign"
    ROLES_MANAGE = "roles.manage"
    SETTINGS_MANAGE = "settings.manage"
    AUDIT_READ = "audit.read"
    SEATS_READ = "seats.read"
    # Held by owners alone: acting on owners and granting the owner role. It is what makes an
    # owner outrank an admin under the one rule "nobody acts beyond the permissions they hold".
    OWNERS_MANAGE = "owners.manage"
    # Connect an identity provider: use the SCIM API (/scim/v2). Each change it makes still
    # needs the permission of the action (users.create, users.deactivate, roles.assign...).
    USERS_PROVISION = "users.provision"
    # Self-service: edit one's own profile fields (name, nickname, bio, status, timezone ...).
    PROFILE_EDIT = "profile.edit"
    # Register outgoing webhooks (they receive users' names and changes) and read their log.
    WEBHOOKS_MANAGE = "webhooks.manage"


PERMISSION_DESCRIPTIONS: dict[Permission, str] = {
    Permission.USERS_READ: "See every user in the directory",
    Permission.USERS_CREATE: "Create users",
    Permission.USERS_EDIT: "Edit other users' profiles",
    Permission.USERS_DEACTIVATE: "Deactivate and activate users",
    Permission.USERS_DELETE: "Delete users permanently",
    Permission.USERS_RESET_CREDENTIALS: "Reset passwords, 2FA and keys of users",
    Permission.ROLES_ASSIGN: "Give and take roles (only roles whose permissions one holds)",
    Permission.ROLES_MANAGE: "Create, edit and delete custom roles",
    Permission.SETTINGS_MANAGE: "Change workspace settings",
    Permission.AUDIT_READ: "Read the audit log",
    Permission.SEATS_READ: "See seat usage",
    Permission.OWNERS_MANAGE: "Act on owners and grant the owner role",
    Permission.USERS_PROVISION: "Provision users from an identity provider over SCIM",
    Permission.PROFILE_EDIT: "Edit one's own profile",
    Permission.WEBHOOKS_MANAGE: "Register outgoing webhooks and read their delivery log",
}

ALL_PERMISSIONS: frozenset[Permission] = frozenset(Permission)

OWNER = "owner"
ADMIN = "admin"
USER_MANAGER = "user-manager"
USER = "user"
GUEST = "guest"
BOT = "bot"

_MANAGER_PERMISSIONS = frozenset(
    {
        Permission.USERS_READ,
        Permission.USERS_CREATE,
        Permission.USERS_EDIT,
        Permission.USERS_DEACTIVATE,
        Permission.USERS_RESET_CREDENTIALS,
        Permission.ROLES_ASSIGN,
        Permission.SEATS_READ,
        Permission.PROFILE_EDIT,
    }
)

BUILT_IN_ROLES: dict[str, tuple[str, frozenset[Permission]]] = {
    OWNER: ("Primary administrator: every permission, including acting on owners", ALL_PERMISSIONS),
    ADMIN: (
        "Administrator: everything except acting on owners or granting the owner role",
        ALL_PERMISSIONS - {Permission.OWNERS_MANAGE},
    ),
    USER_MANAGER: (
        "Creates, edits, deactivates and resets users; no settings, no role administration",
        _MANAGER_PERMISSIONS,
    ),
    USER: ("A member of the workspace: self-service only", frozenset({Permission.PROFILE_EDIT})),
    GUEST: ("A guest: no administrative or self-service permissions", frozenset()),
    BOT: ("An automated account", frozenset()),
}

DEFAULT_HUMAN_ROLE = USER
DEFAULT_BOT_ROLE = BOT
