"""The one filter that scopes what a viewer may read of the directory."""

from __future__ import annotations

from sqlalchemy import ColumnElement, true

from userdesk.actions.context import Actor
from userdesk.models import User
from userdesk.security.permissions import Permission


def visible_users(viewer: Actor) -> ColumnElement[bool]:
    """With users.read, everyone; without it, only oneself."""
    if viewer.has(Permission.USERS_READ):
        return true()
    return User.id == viewer.user_id
