"""Who is calling: a bearer token or a session cookie, resolved to an Actor."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import two_factor
from userdesk.actions.context import Actor
from userdesk.actions.rules import permissions_of
from userdesk.models import WORKSPACE_ID, ApiToken, LoginSession, User, UserStatus, Workspace
from userdesk.queries.loading import roles_joined
from userdesk.security.randomness import token_digest
from userdesk.services import services_of


async def actor_for_token(
    session: AsyncSession, token: str, *, ip: str | None, user_agent: str | None
) -> tuple[Actor, ApiToken] | None:
    """The actor behind a live token of a user who is not deactivated, else None."""
    # The token, its user, their roles and the workspace's rules in one statement.
    row = (
        (
            await session.execute(
                roles_joined(
                    select(ApiToken, User, Workspace)
                    .join(User, User.id == ApiToken.user_id)
                    .join(Workspace, Workspace.id == WORKSPACE_ID)
                    .where(ApiToken.digest == token_digest(token), ApiToken.revoked_at.is_(None))
                )
            )
        )
        .unique()
        .first()
    )
    if row is None:
        return None
    api_token, user, workspace = row
    now = services_of(session).clock.now()
    if api_token.expires_at is not None and api_token.expires_at <= now:
        return None
    if user.status is UserStatus.DEACTIVATED:
        return None
    actor = replace(
        _actor(user, workspace, ip, user_agent),
        via_token=True,
        token_expires_at=api_token.expires_at,
    )
    if api_token.permissions is not None:
        # A restricted token: what its user holds now, narrowed to what the token was given.
        actor = replace(
            actor,
            permissions=actor.permissions & frozenset(api_token.permissions),
            restricted_token=True,
        )
    return actor, api_token


def _actor(
    user: User,
    workspace: Workspace,
    ip: str | None,
    user_agent: str | None,
    *,
    by_password: bool = False,
) -> Actor:
    return Actor(
        user_id=user.id,
        public_id=user.public_id,
        name=user.username,
        permissions=permissions_of(user.roles),
        ip=ip,
        user_agent=user_agent,
        must_change_password=by_password and user.require_password_change,
        must_enrol_two_factor=two_factor.must_enrol_in(user, workspace),
    )


async def actor_for_session(
    session: AsyncSession, secret: str, *, ip: str | None, user_agent: str | None
) -> tuple[Actor, LoginSession] | None:
    """The actor behind an open session cookie: not revoked, not past its absolute expiry,
    used within the workspace's idle timeout, of a user who is not deactivated."""
    row = (
        (
            await session.execute(
                roles_joined(
                    select(LoginSession, User, Workspace)
                    .join(User, User.id == LoginSession.user_id)
                    .join(Workspace, Workspace.id == WORKSPACE_ID)
                    .where(
                        LoginSession.digest == token_digest(secret),
                        LoginSession.revoked_at.is_(None),
                    )
                )
            )
        )
        .unique()
        .first()
    )
    if row is None:
        return None
    login_session, user, workspace = row
    idle_minutes = workspace.session_idle_minutes
    now = services_of(session).clock.now()
    if now >= login_session.expires_at or now - login_session.last_seen_at >= timedelta(
        minutes=idle_minutes
    ):
        return None
    if user.status is UserStatus.DEACTIVATED:
        return None
    return _actor(user, workspace, ip, user_agent, by_password=True), login_session
