"""Personal access tokens: minted once, stored as digests, revocable."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from userdesk.actions.audit import AuditEvent, record_for_user
from userdesk.actions.context import Actor
from userdesk.actions.inputs import TokenCreate, fold
from userdesk.actions.rules import ensure_can_act_on, lock_user, permissions_of
from userdesk.errors import Duplicate, InvalidInput, NotFound, PermissionDenied
from userdesk.models import ApiToken, User, UserStatus, UserType
from userdesk.security.permissions import ALL_PERMISSIONS, Permission
from userdesk.security.randomness import token_digest
from userdesk.services import services_of

TOKEN_NAME_MAX = 100
LAST_USED_RESOLUTION = timedelta(minutes=1)


def ensure_may_manage_tokens_of(actor: Actor, user: User, *, revoking: bool = False) -> None:
    """A user manages their own tokens; the system actor (the operator's CLI) anyone's. With
    users.reset_credentials (and not outranked by the user) one also mints and lists a bot's
    tokens, and revokes anyone's."""
    if actor.is_system:
        return
    if actor.user_id == user.id:
        actor.ensure_may_act()
        return
    if user.type is UserType.BOT or revoking:
        actor.require(Permission.USERS_RESET_CREDENTIALS)
        ensure_can_act_on(actor, user, doing="managing the tokens of")
        return
    raise PermissionDenied("only the token's owner can manage it")


def _token_permissions(actor: Actor, user: User, requested: list[str] | None) -> list[str] | None:
    """What the new token may do: a subset of its user's permissions and of the minting
    actor's (a restricted token cannot mint a broader one). None means all of the user's."""
    held = permissions_of(user.roles)
    ceiling = held if actor.is_system or actor.user_id != user.id else held & actor.permissions
    if requested is None:
        return None if ceiling == held else sorted(ceiling)
    unknown = sorted(set(requested) - ALL_PERMISSIONS)
    if unknown:
        raise InvalidInput.one("permissions", "unknown_permission", f"no permission {unknown[0]}")
    beyond = sorted(set(requested) - ceiling)
    if beyond:
        raise InvalidInput.one(
            "permissions",
            "beyond_owner",
            f"{beyond[0]} is not held by {user.username}; a token gets a subset of its "
            "user's permissions",
        )
    return sorted(set(requested))


async def _token_user(session: AsyncSession, username: str | None, user_id: str | None) -> User:
    # Locked, so a deactivation in flight either sees this token and revokes it, or has
    # committed and we refuse below.
    condition = User.public_id == user_id if user_id else User.username_key == fold(username or "")
    user = await session.scalar(
        select(User).where(condition).options(selectinload(User.roles)).with_for_update(of=User)
    )
    if user is None:
        raise NotFound(f"no user with id {user_id}" if user_id else f"no user named {username}")
    return user


async def create_token(
    session: AsyncSession,
    *,
    actor: Actor,
    username: str | None = None,
    user_id: str | None = None,
    name: str,
    expires_at: datetime | None = None,
    permissions: list[str] | None = None,
) -> tuple[ApiToken, str]:
    """Returns the token row and its secret, which is shown once and never stored."""
    name = name.strip()
    if not 1 <= len(name) <= TOKEN_NAME_MAX:
        raise InvalidInput.one("name", "length", f"must be 1 to {TOKEN_NAME_MAX} characters long")
    user = await _token_user(session, username, user_id)
    ensure_may_manage_tokens_of(actor, user)
    if user.status is UserStatus.DEACTIVATED:
        raise InvalidInput.one("user", "deactivated", f"{user.username} is deactivated")
    granted = _token_permissions(actor, user, permissions)
    services = services_of(session)
    now = services.clock.now()
    if expires_at is not None and expires_at <= now:
        raise InvalidInput.one("expires_at", "in_the_past", "must be in the future")
    if actor.token_expires_at is not None:
        # Minted with an expiring token: the new one must not outlive it.
        if expires_at is None:
            expires_at = actor.token_expires_at
        elif expires_at > actor.token_expires_at:
            raise InvalidInput.one(
                "expires_in_days",
                "outlives_minting_token",
                "must not end after the token used to mint it "
                f"({actor.token_expires_at.isoformat()})",
            )
    secret = services.randomness.token()
    token = ApiToken(
        public_id=services.randomness.public_id(),
        user_id=user.id,
        name=name,
        digest=token_digest(secret),
        hint=secret[:8],
        created_at=now,
        expires_at=expires_at,
        permissions=granted,
    )
    session.add(token)
    await session.flush()
    await record_for_user(
        session,
        actor=actor,
        event=AuditEvent.TOKEN_CREATED,
        user=user,
        changes={
            "token": {"changed": True},
            "token_name": {"before": None, "after": name},
            "token_permissions": {"before": None, "after": granted or "all of the user's"},
        },
    )
    return token, secret


async def mint_token(
    session: AsyncSession, *, actor: Actor, user_id: str, data: TokenCreate
) -> tuple[ApiToken, str]:
    """create_token from the adapters' input model: `expires_in_days` counts from now."""
    expires_at = None
    if data.expires_in_days is not None:
        expires_at = services_of(session).clock.now() + timedelta(days=data.expires_in_days)
    return await create_token(
        session,
        actor=actor,
        user_id=user_id,
        name=data.name,
        expires_at=expires_at,
        permissions=data.permissions,
    )


async def revoke_token(
    session: AsyncSession, *, actor: Actor, token_id: str, user_id: str | None = None
) -> ApiToken:
    """Revoke a token (of the user `user_id`, when given: another user's token is not found)."""
    row = await session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.public_id == token_id)
        .options(selectinload(User.roles))
        .with_for_update(of=ApiToken)
    )
    found = row.first()
    if found is None or (user_id is not None and found[1].public_id != user_id):
        raise NotFound(f"no token with id {token_id}")
    token, user = found
    ensure_may_manage_tokens_of(actor, user, revoking=True)
    if token.revoked_at is None:
        token.revoked_at = services_of(session).clock.now()
        await record_for_user(
            session,
            actor=actor,
            event=AuditEvent.TOKEN_REVOKED,
            user=user,
            changes={"token_name": {"before": token.name, "after": None}},
        )
    return token


async def _own_live_tokens_named(session: AsyncSession, actor: Actor, name: str) -> list[ApiToken]:
    """The actor's unrevoked, unexpired tokens of this name, their user's row locked first:
    two calls at once must not both find the name free."""
    assert actor.public_id is not None
    user = await lock_user(session, actor.public_id)
    now = services_of(session).clock.now()
    return list(
        await session.scalars(
            select(ApiToken).where(
                ApiToken.user_id == user.id,
                ApiToken.name == name,
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
            )
        )
    )


async def create_uniquely_named_token(
    session: AsyncSession, *, actor: Actor, name: str
) -> tuple[ApiToken, str]:
    """A token for the actor under a name none of their live tokens has: for clients that
    address tokens by name (Rocket.Chat's)."""
    if await _own_live_tokens_named(session, actor, name):
        raise Duplicate(f"a token named {name!r} already exists", field="name")
    return await create_token(session, actor=actor, user_id=actor.public_id, name=name)


async def revoke_tokens_named(session: AsyncSession, *, actor: Actor, name: str) -> ApiToken:
    """Revoke the actor's live tokens of this name; returns one of them."""
    named = await _own_live_tokens_named(session, actor, name)
    if not named:
        raise NotFound(f"no token named {name!r}")
    for token in named:
        await revoke_token(session, actor=actor, token_id=token.public_id)
    return named[0]


async def renew_token_named(
    session: AsyncSession, *, actor: Actor, name: str
) -> tuple[ApiToken, str]:
    """A new secret for the actor's token of this name, with its permissions and expiry."""
    old = await revoke_tokens_named(session, actor=actor, name=name)
    return await create_token(
        session,
        actor=actor,
        user_id=actor.public_id,
        name=name,
        permissions=old.permissions,
        expires_at=old.expires_at,
    )


async def note_token_use(session: AsyncSession, *, token_id: int, at: datetime) -> None:
    """Record last use, at most once a minute per token, so reads don't become writes."""
    token = await session.get(ApiToken, token_id)
    if token is not None and (
        token.last_used_at is None or at - token.last_used_at >= LAST_USED_RESOLUTION
    ):
        token.last_used_at = at
