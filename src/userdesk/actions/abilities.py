"""What a viewer may do to a user right now, for showing only the actions that apply.

The actions still decide (the last owner, seats and races are checked there, under locks);
this answers from the same rules without touching the database, so a list of users can show
each row's menu.
"""

from __future__ import annotations

from dataclasses import dataclass

from userdesk.actions.context import Actor
from userdesk.actions.rules import permissions_of
from userdesk.models import User, UserStatus, UserType
from userdesk.security.permissions import ADMIN, BOT, BUILT_IN_ROLES, USER, Permission

ADMIN_PERMISSIONS = BUILT_IN_ROLES[ADMIN][1]


@dataclass(frozen=True)
class Abilities:
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


def without_admin(user: User) -> list[str]:
    """The roles Remove Admin leaves: the others, or the plain role of the user's kind."""
    rest = [role.name for role in user.roles if role.name != ADMIN]
    return rest or [BOT if user.type is UserType.BOT else USER]
