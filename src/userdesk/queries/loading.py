"""What comes with a user read by one statement: their roles, creator and manager, joined in.

For statements that find one user (a token's, a session's, User Info, a user locked for an
action): a handful of rows, where loading each relation by its own statement cost an extra
round trip and ORM pass per request.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import aliased, contains_eager

from userdesk.models import Role, User, user_roles

_S = TypeVar("_S", bound="Select[*tuple[Any, ...]]")

_creator = aliased(User, name="creator")
_manager = aliased(User, name="manager")


def roles_joined(statement: _S) -> _S:
    """`statement` (over User) with the user's roles loaded by the same statement, one row
    per role (call .unique() on the result).

    The joins are written flat (users, then user_roles, then roles): the nested form the ORM
    writes for `outerjoin(User.roles)`, `LEFT JOIN (user_roles JOIN roles)`, makes SQLite
    build that inner join for every user before it looks one up (a full read of user_roles).
    """
    return (
        statement.outerjoin(user_roles, user_roles.c.user_id == User.id)
        .outerjoin(Role, Role.id == user_roles.c.role_id)
        .options(contains_eager(User.roles))
    )


def creator_joined(statement: _S) -> _S:
    """`statement` (over User) with the user who created them loaded by the same statement."""
    return statement.outerjoin(_creator, User.created_by).options(
        contains_eager(User.created_by.of_type(_creator))
    )


def manager_joined(statement: _S) -> _S:
    """`statement` (over User) with the user's manager loaded by the same statement."""
    return statement.outerjoin(_manager, User.manager).options(
        contains_eager(User.manager.of_type(_manager))
    )


def user_joined(statement: _S) -> _S:
    """`statement` (over User) with the user's roles, in name order as `User.roles` keeps
    them, their creator and their manager, all loaded by the same statement (call
    .unique())."""
    return manager_joined(creator_joined(roles_joined(statement))).order_by(Role.name)
