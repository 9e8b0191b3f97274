"""What a viewer may do to a user right now, for showing only the actions that apply.

The actions still decide (the last owner, seats and races are checked there, under locks);
this answers from the same rules without touching the database, so a list of users can show
each row's menu.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from userdesk.actions.context import Actor
from userdesk.actions.rules import permissions_of
from userdesk.models import Role, User, UserStatus, UserType
from userdesk.security.permissions import (
    ADMIN,
    BUILT_IN_ROLES,
    DEFAULT_HUMAN_ROLE,
    Permission,
)

ADMIN_PERMISSIONS = BUILT_IN_ROLES[ADMIN][1]


@dataclass(frozen=True)
class Abilities:
    edit: bool = False
    make_admin: bool = False
    remove_admin: bool = False
    reset_password: bool = False
    reset_two_factor: bool = False
    reset_e2e_keys: bool = False
    deactivate: bool = False
    activate: bool = False
    delete: bool = False

    @property
    def any(self) -> bool:
        return any(vars(self).values())


def abilities(actor: Actor, user: User) -> Abilities:
    itself = actor.user_id == user.id
    # Nobody acts on a user whose roles carry a permission they lack (owners outrank admins).
    outranks = itself or permissions_of(user.roles) <= actor.permissions
    names = {role.name for role in user.roles}

    def may(permission: Permission) -> bool:
        return actor.has(permission) and outranks

    may_grant_admin = may(Permission.ROLES_ASSIGN) and actor.permissions >= ADMIN_PERMISSIONS
    return Abilities(
        edit=not itself and may(Permission.USERS_EDIT),
        make_admin=may_grant_admin and ADMIN not in names and user.type is not UserType.BOT,
        remove_admin=may_grant_admin and ADMIN in names,
        reset_password=(
            not itself and may(Permission.USERS_RESET_CREDENTIALS) and user.type is UserType.HUMAN
        ),
        reset_two_factor=(
            not itself
            and may(Permission.USERS_RESET_CREDENTIALS)
            and user.totp_enabled_at is not None
        ),
        reset_e2e_keys=(
            not itself and may(Permission.USERS_RESET_CREDENTIALS) and user.e2e_keys_at is not None
        ),
        deactivate=not itself
        and may(Permission.USERS_DEACTIVATE)
        and user.status is not UserStatus.DEACTIVATED,
        activate=may(Permission.USERS_DEACTIVATE) and user.status is UserStatus.DEACTIVATED,
        delete=not itself and may(Permission.USERS_DELETE),
    )


def holds_all_of(actor: Actor, role: Role) -> bool:
    """Whether the actor holds every permission the role carries: only then may they give
    or take it (rules.ensure_can_grant), or change it."""
    return permissions_of([role]) <= actor.permissions


def may_edit_own_profile(actor: Actor) -> bool:
    """Whether update_user lets the actor change their own profile fields."""
    return actor.has(Permission.PROFILE_EDIT) or actor.has(Permission.USERS_EDIT)


def grantable_roles(actor: Actor, roles: Iterable[Role]) -> list[Role]:
    """The roles the actor may give a new person (an invitation, an invite link, a new user),
    for offering only those: the default role with users.create, any other with roles.assign
    too, and none carrying a permission the actor lacks."""
    if not actor.has(Permission.USERS_CREATE):
        return []
    may_assign = actor.has(Permission.ROLES_ASSIGN)
    return [
        role
        for role in roles
        if (may_assign or role.name == DEFAULT_HUMAN_ROLE) and holds_all_of(actor, role)
    ]


@dataclass(frozen=True)
class RoleAbilities:
    edit: bool = False
    delete: bool = False


def role_abilities(actor: Actor, role: Role) -> RoleAbilities:
    """What the actor may do to a role, as update_role and delete_role judge it: custom roles
    only, with roles.manage, and none carrying a permission the actor lacks. Whether the role
    is still held is the action's to say (it counts under a lock)."""
    may = actor.has(Permission.ROLES_MANAGE) and not role.built_in and holds_all_of(actor, role)
    return RoleAbilities(edit=may, delete=may)
