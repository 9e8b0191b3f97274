"""Rocket.Chat's users.* methods, served by userdesk's actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from userdesk.actions import e2e, recovery, two_factor
from userdesk.actions import invitations as invitation_actions
from userdesk.actions import passwords as password_actions
from userdesk.actions import tokens as token_actions
from userdesk.actions import users as user_actions
from userdesk.actions.context import Actor
from userdesk.actions.inputs import (
    AdminPasswordReset,
    JoinRequest,
    PasswordForgot,
    TokenCreate,
    UserCreate,
    UserUpdate,
)
from userdesk.errors import Duplicate, InvalidInput, NotFound
from userdesk.http.api.avatars import avatar_response
from userdesk.http.deps import DatabaseDep
from userdesk.http.rocketchat.protocol import (
    API,
    RocketChatActor,
    RocketChatError,
    body_of,
    flag,
    iso,
    json_parameter,
    named_user,
    ok,
    page_of,
    text,
    user_shape,
    utc_offset,
)
from userdesk.models import ApiToken, User, UserStatus, UserType
from userdesk.queries import rocketchat as rc_queries
from userdesk.queries import tokens as token_queries
from userdesk.queries import users as user_queries
from userdesk.queries.scim import search_users
from userdesk.services import services_of

router = APIRouter(prefix=API.rstrip("/"), include_in_schema=False)
avatar_router = APIRouter(include_in_schema=False)

# Rocket.Chat's profile fields by userdesk's names (users.create and users.update).
_PROFILE = {
    "email": "email",
    "name": "name",
    "username": "username",
    "bio": "bio",
    "nickname": "nickname",
    "statusText": "status_message",
}
_FLAGS = {"verified": "email_verified", "requirePasswordChange": "require_password_change"}


def _profile(body: dict[str, Any]) -> dict[str, Any]:
    values = {ours: body[theirs] for theirs, ours in _PROFILE.items() if theirs in body}
    values.update(
        {ours: flag(body[theirs], theirs) for theirs, ours in _FLAGS.items() if theirs in body}
    )
    return values


async def _shape(session: AsyncSession, user: User) -> dict[str, Any]:
    return user_shape(user, online=bool(await rc_queries.online(session, [user.id])))


@router.post("/users.create")
async def create(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """Rocket.Chat's required email, name, password and username, and its optional fields.
    `setRandomPassword` emails a random password to be changed at the first sign-in; a
    `bot` role makes a bot. Ignored: joinDefaultChannels, customFields and the like."""
    body = await body_of(request)
    random = flag(body.get("setRandomPassword"), "setRandomPassword") or False
    if random and body.get("password"):
        raise InvalidInput.one(
            "password", "not_allowed", "leave it out with setRandomPassword: the server picks one"
        )
    values = _profile(body)
    if not random and "password" in body:
        values["password"] = body["password"]
    if "sendWelcomeEmail" in body:
        values["send_welcome_email"] = flag(body["sendWelcomeEmail"], "sendWelcomeEmail")
    roles = body.get("roles")
    if roles is not None:
        values["roles"] = roles
        if isinstance(roles, list) and "bot" in roles:
            values["type"] = UserType.BOT
    data = UserCreate.model_validate(values)
    if data.password is None and not random:
        raise InvalidInput.one("password", "required", "is required (or set setRandomPassword)")
    active = flag(body.get("active"), "active")
    async with database.transaction() as session:
        user = await user_actions.create_user(
            session, actor=actor, data=data, active=active is not False
        )
        if random:
            user = await password_actions.reset_password(
                session, actor=actor, user_id=user.public_id, data=AdminPasswordReset(mode="random")
            )
        return ok(user=await _shape(session, user))


@router.get("/users.info")
async def info(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """By userId, username or email (importId is not a userdesk notion)."""
    async with database.reader() as session:
        user = await named_user(session, actor, request.query_params, error_type=None)
        return ok(user=await _shape(session, user))


def _project(shape: dict[str, Any], fields: dict[str, int] | None) -> dict[str, Any]:
    if not fields:
        return shape
    keys = {name.split(".", 1)[0] for name in fields}
    if all(fields.values()):
        return {k: v for k, v in shape.items() if k in keys or k == "_id"}
    return {k: v for k, v in shape.items() if k not in keys}


def _fields(value: Any) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v in (0, 1) for v in value.values()
    ):
        raise InvalidInput.one(
            "fields", "invalid_fields", 'must map field names to 1 or 0, such as {"name": 1}'
        )
    if len(set(value.values())) > 1:
        raise InvalidInput.one(
            "fields", "invalid_fields", "cannot mix including (1) and excluding (0)"
        )
    return value


@router.get("/users.list")
async def list_users(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """`offset`, `count` (at most 100), `sort` (one field), `fields` and `query` as JSON."""
    offset, count = page_of(request)
    condition = rc_queries.user_condition(json_parameter(request, "query") or {})
    sort = json_parameter(request, "sort")
    order, descending = rc_queries.sort_order(sort if sort is not None else {"username": 1})
    fields = _fields(json_parameter(request, "fields"))
    async with database.reader() as session:
        found = await search_users(
            session,
            viewer=actor,
            condition=condition,
            order=order,
            descending=descending,
            start=offset,
            count=count,
        )
        online = await rc_queries.online(session, [user.id for user in found.users])
    users = [_project(user_shape(u, online=u.id in online), fields) for u in found.users]
    return ok(users=users, count=len(users), offset=offset, total=found.total)


@router.post("/users.update")
async def update(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """`userId` and `data`: profile fields, password, roles, active, setRandomPassword,
    sendWelcomeEmail; all in one transaction, so a refused part changes nothing."""
    body = await body_of(request)
    changes = body.get("data")
    if not isinstance(changes, dict) or not changes:
        raise InvalidInput.one("data", "required", "is required: an object of the fields to change")
    values = _profile(changes)
    if "password" in changes:
        values["password"] = changes["password"]
    update_data = UserUpdate.model_validate(values)
    active = flag(changes.get("active"), "active") if "active" in changes else None
    random = flag(changes.get("setRandomPassword"), "setRandomPassword") or False
    async with database.transaction() as session:
        user = await named_user(session, actor, {"userId": text(body.get("userId"), "userId")})
        user_id = user.public_id
        if values:
            user = await user_actions.update_user(
                session, actor=actor, user_id=user_id, data=update_data
            )
        if "roles" in changes:
            roles = changes["roles"]
            if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                raise InvalidInput.one("roles", "list", "must be a list of role names")
            user = await user_actions.set_roles(session, actor=actor, user_id=user_id, roles=roles)
        if active is not None and active != (user.status is not UserStatus.DEACTIVATED):
            change = user_actions.activate_user if active else user_actions.deactivate_user
            user = await change(session, actor=actor, user_id=user_id)
        if random:
            user = await password_actions.reset_password(
                session, actor=actor, user_id=user_id, data=AdminPasswordReset(mode="random")
            )
        if flag(changes.get("sendWelcomeEmail"), "sendWelcomeEmail"):
            user = await user_actions.send_welcome_email(session, actor=actor, user_id=user_id)
        user = await user_queries.get_user(session, viewer=actor, user_id=user_id)
        return ok(user=await _shape(session, user))


@router.post("/users.delete")
async def delete(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """Deletes for good (`confirmRelinquish` is accepted: userdesk users own no rooms)."""
    body = await body_of(request)
    async with database.transaction() as session:
        user = await named_user(session, actor, body)
        await user_actions.delete_user(session, actor=actor, user_id=user.public_id)
    return ok()


@router.post("/users.setActiveStatus")
async def set_active_status(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    body = await body_of(request)
    active = flag(body.get("activeStatus"), "activeStatus")
    if active is None:
        raise InvalidInput.one("activeStatus", "required", "is required: true or false")
    async with database.transaction() as session:
        user = await named_user(session, actor, {"userId": text(body.get("userId"), "userId")})
        if active != (user.status is not UserStatus.DEACTIVATED):
            change = user_actions.activate_user if active else user_actions.deactivate_user
            user = await change(session, actor=actor, user_id=user.public_id)
        return ok(user={"_id": user.public_id, "active": user.status is not UserStatus.DEACTIVATED})


@router.post("/users.resetTOTP")
async def reset_totp(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    body = await body_of(request)
    async with database.transaction() as session:
        user = await named_user(session, actor, body, own_by_default=True)
        await two_factor.reset_two_factor(session, actor=actor, user_id=user.public_id)
    return ok()


@router.post("/users.resetE2EKey")
async def reset_e2e_key(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    body = await body_of(request)
    async with database.transaction() as session:
        user = await named_user(session, actor, body, own_by_default=True)
        await e2e.reset_keys(session, actor=actor, user_id=user.public_id)
    return ok()


def _invite_token(body: dict[str, Any]) -> str | None:
    """An invite link's token, given alone or as its URL (Rocket.Chat's `secretURL`)."""
    given = text(body.get("secretURL"), "secretURL") or text(body.get("secret"), "secret")
    return given.rstrip("/").rsplit("/", 1)[-1] if given else None


@router.post("/users.register")
async def register(request: Request, database: DatabaseDep) -> Any:
    """Self-registration, which userdesk allows only through an invitation or invite link:
    its token (or URL) as `secretURL`, with username, email, pass and name."""
    body = await body_of(request)
    token = _invite_token(body)
    if token is None:
        raise RocketChatError(
            "error-user-registration-secret",
            "User registration is only allowed via Secret URL: pass an invite link (or its "
            "token) as secretURL",
        )
    data = JoinRequest.model_validate(
        {
            "name": body.get("name") or body.get("username"),
            "username": body.get("username"),
            "password": body.get("pass") or body.get("password"),
            "email": body.get("email"),
        }
    )
    async with database.transaction() as session:
        joined = await invitation_actions.join(
            session,
            token=token,
            data=data,
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
        user = joined.user
        shape = {
            "_id": user.public_id,
            "type": "user",
            "status": "offline",
            "active": True,
            "name": user.name,
            "username": user.username,
        }
        offset = utc_offset(user)
        if offset is not None:
            shape["utcOffset"] = offset
    return ok(user=shape)


@router.get("/users.getPresence")
async def get_presence(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """Online: a session of theirs was used in the last five minutes. The caller's own
    presence also carries their last login."""
    async with database.reader() as session:
        user = await named_user(session, actor, request.query_params, own_by_default=True)
        online = bool(await rc_queries.online(session, [user.id]))
    if user.public_id == actor.public_id:
        return ok(presence="online", connectionStatus="online", lastLogin=iso(user.last_login_at))
    return ok(presence="online" if online else "offline")


@router.post("/users.setAvatar")
async def set_avatar(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """`avatarUrl`, or a picture uploaded as the multipart field `image`; for the caller
    unless userId or username names someone."""
    body = await body_of(request)
    image = body.get("image")
    url = body.get("avatarUrl")
    if not isinstance(image, UploadFile) and not url:
        raise RocketChatError(None, "The 'image' param is required")
    async with database.transaction() as session:
        user = await named_user(session, actor, body, own_by_default=True)
        if isinstance(image, UploadFile):
            await user_actions.set_avatar_image(
                session, actor=actor, user_id=user.public_id, image=await image.read()
            )
        else:
            await user_actions.update_user(
                session, actor=actor, user_id=user.public_id, data=UserUpdate(avatar_url=url)
            )
    return ok()


@router.post("/users.resetAvatar")
async def reset_avatar(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    body = await body_of(request)
    async with database.transaction() as session:
        user = await named_user(session, actor, body, own_by_default=True)
        await user_actions.update_user(
            session, actor=actor, user_id=user.public_id, data=UserUpdate(avatar_url=None)
        )
    return ok()


@router.get("/users.getAvatar")
async def get_avatar(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """Redirects to /avatar/<username>, as Rocket.Chat does."""
    async with database.reader() as session:
        user = await named_user(session, actor, request.query_params)
    return RedirectResponse(f"/avatar/{user.username}", status_code=307)


@avatar_router.get("/avatar/{username}")
async def avatar(
    username: str, request: Request, actor: RocketChatActor, database: DatabaseDep
) -> Response:
    """The picture, as the native avatar route serves it (signed-in callers only: userdesk
    does not publish pictures)."""
    async with database.reader() as session:
        user = await named_user(session, actor, {"username": username})
        found, image = await user_queries.get_avatar(session, viewer=actor, user_id=user.public_id)
    return avatar_response(request, found, image)


@router.post("/users.sendWelcomeEmail")
async def send_welcome_email(
    request: Request, actor: RocketChatActor, database: DatabaseDep
) -> Any:
    body = await body_of(request)
    email = text(body.get("email"), "email")
    if not email:
        raise InvalidInput.one("email", "required", "is required")
    async with database.transaction() as session:
        user = await named_user(session, actor, {"email": email})
        await user_actions.send_welcome_email(session, actor=actor, user_id=user.public_id)
    return ok()


@router.post("/users.forgotPassword")
async def forgot_password(request: Request, database: DatabaseDep) -> Any:
    """Emails a reset link if the address is someone's; answers the same either way."""
    body = await body_of(request)
    email = text(body.get("email"), "email")
    if not email:
        raise RocketChatError(None, "The 'email' param is required")
    data = PasswordForgot.model_validate({"login": email})
    async with database.transaction() as session:
        await recovery.request_password_reset(
            session,
            data=data,
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
    return ok()


def _token_name(body: dict[str, Any]) -> str:
    """The name, under the native API's rules for token names."""
    return TokenCreate.model_validate({"name": body.get("tokenName")}).name


async def _live_tokens(session: AsyncSession, actor: Actor) -> list[ApiToken]:
    assert actor.public_id is not None
    owner = await token_queries.token_owner(session, viewer=actor, user_id=actor.public_id)
    now = services_of(session).clock.now()
    tokens = await token_queries.list_tokens(session, viewer=actor, user=owner)
    return [
        t for t in tokens if t.revoked_at is None and (t.expires_at is None or t.expires_at > now)
    ]


@router.post("/users.generatePersonalAccessToken")
async def generate_token(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """A personal access token for the caller, used as X-Auth-Token with their X-User-Id
    (`bypassTwoFactor` is accepted: tokens never ask for a second factor)."""
    name = _token_name(await body_of(request))
    try:
        async with database.transaction() as session:
            _, secret = await token_actions.create_uniquely_named_token(
                session, actor=actor, name=name
            )
    except Duplicate:
        raise RocketChatError(
            "error-token-already-exists", "A token with this name already exists"
        ) from None
    return ok(token=secret)


@router.get("/users.getPersonalAccessTokens")
async def list_tokens(actor: RocketChatActor, database: DatabaseDep) -> Any:
    """`lastTokenPart` holds the first characters of the token: userdesk keeps those."""
    async with database.reader() as session:
        live = await _live_tokens(session, actor)
    return ok(
        tokens=[
            {
                "name": t.name,
                "createdAt": iso(t.created_at),
                "lastTokenPart": t.hint,
                "bypassTwoFactor": True,
            }
            for t in live
        ]
    )


def _no_such_token() -> RocketChatError:
    return RocketChatError("error-token-does-not-exists", "Token does not exist")


@router.post("/users.regeneratePersonalAccessToken")
async def regenerate_token(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """A new secret for the named token, keeping its permissions and its expiry."""
    name = _token_name(await body_of(request))
    try:
        async with database.transaction() as session:
            _, secret = await token_actions.renew_token_named(session, actor=actor, name=name)
    except NotFound:
        raise _no_such_token() from None
    return ok(token=secret)


@router.post("/users.removePersonalAccessToken")
async def remove_token(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    name = _token_name(await body_of(request))
    try:
        async with database.transaction() as session:
            await token_actions.revoke_tokens_named(session, actor=actor, name=name)
    except NotFound:
        raise _no_such_token() from None
    return ok()
