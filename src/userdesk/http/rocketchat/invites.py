"""Rocket.Chat's invite methods over userdesk's invite links. userdesk has no rooms: `rid`
is accepted and ignored, and an invite creates an account (users.register with the link
as secretURL) rather than adding an existing user to a room."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request

from userdesk.actions import invitations as invitation_actions
from userdesk.actions.inputs import InviteLinkCreate
from userdesk.errors import DomainError, InvitationInvalid, NotFound
from userdesk.http.deps import DatabaseDep
from userdesk.http.rocketchat.protocol import (
    API,
    RocketChatActor,
    RocketChatError,
    body_of,
    iso,
    ok,
    text,
)
from userdesk.models import InviteLink
from userdesk.queries import invitations as invitation_queries

router = APIRouter(prefix=API.rstrip("/"), include_in_schema=False)

# Rocket.Chat's choices. Its "0 days" (never expires) becomes userdesk's longest, 90 days;
# "0 uses" is no limit.
DAYS = (0, 1, 7, 15, 30)
USES = (0, 1, 5, 10, 25, 50, 100)
NEVER_EXPIRES_DAYS = 90


def _days(link: InviteLink) -> int:
    days = round((link.expires_at - link.created_at) / timedelta(days=1))
    return 0 if days == NEVER_EXPIRES_DAYS else days


def _invite(link: InviteLink, creator_id: str | None) -> dict[str, Any]:
    return {
        "_id": link.public_id,
        "userId": creator_id,
        "createdAt": iso(link.created_at),
        "_updatedAt": iso(link.revoked_at or link.created_at),
        "expires": iso(link.expires_at),
        "days": _days(link),
        "maxUses": link.max_uses or 0,
        "uses": link.uses,
    }


def _choice(body: dict[str, Any], name: str, choices: tuple[int, ...], error_type: str) -> int:
    value = body.get(name, 0 if name == "maxUses" else 1)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or value not in choices:
        raise RocketChatError(error_type, f"{name} must be one of {', '.join(map(str, choices))}")
    return int(value)


@router.post("/findOrCreateInvite")
async def find_or_create_invite(
    request: Request, actor: RocketChatActor, database: DatabaseDep
) -> Any:
    """A new invite link (`days` 0, 1, 7, 15 or 30; `maxUses` 0, 1, 5, 10, 25, 50 or 100),
    granting the default role. userdesk keeps only a digest of a link's token, so an earlier
    link with the same settings cannot be shown again: every call makes a new one."""
    body = await body_of(request)
    days = _choice(body, "days", DAYS, "invalid-number-of-days")
    uses = _choice(body, "maxUses", USES, "invalid-number-of-uses")
    data = InviteLinkCreate(expires_in_days=days or NEVER_EXPIRES_DAYS, max_uses=uses or None)
    async with database.transaction() as session:
        (created,) = await invitation_actions.create_invite_links(session, actor=actor, data=data)
        shape = _invite(created.link, actor.public_id)
    token = created.url.rstrip("/").rsplit("/", 1)[-1]
    rid = text(body.get("rid"), "rid")
    return ok(**shape, rid=rid, url=created.url, inviteToken=token)


@router.get("/listInvites")
async def list_invites(actor: RocketChatActor, database: DatabaseDep) -> Any:
    """The invite links still usable, newest first, as a bare list (as Rocket.Chat answers)."""
    invites: list[dict[str, Any]] = []
    cursor = None
    async with database.reader() as session:
        while True:
            page = await invitation_queries.list_invite_links(
                session,
                viewer=actor,
                status=invitation_queries.InviteLinkStatus.ACTIVE,
                limit=invitation_queries.MAX_LIMIT,
                cursor=cursor,
            )
            invites.extend(
                _invite(item.link, item.created_by.id if item.created_by else None)
                for item in page.items
            )
            cursor = page.next_cursor
            if cursor is None:
                return invites


@router.delete("/removeInvite/{invite_id}")
async def remove_invite(invite_id: str, actor: RocketChatActor, database: DatabaseDep) -> Any:
    try:
        async with database.transaction() as session:
            await invitation_actions.revoke_invite_link(session, actor=actor, link_id=invite_id)
    except NotFound:
        raise RocketChatError("invalid-invitation-id", "Invalid invitation id") from None
    return True


async def _check(database: Any, token: str | None) -> None:
    if not token:
        raise RocketChatError("error-invalid-token", "The invite token is invalid")
    async with database.reader() as session:
        await invitation_actions.join_info(session, token=token)


@router.post("/validateInviteToken")
async def validate_invite_token(request: Request, database: DatabaseDep) -> Any:
    """Whether the token can still be used to join (no sign-in needed)."""
    body = await body_of(request)
    try:
        await _check(database, text(body.get("token"), "token"))
    except DomainError:
        return ok(valid=False)
    return ok(valid=True)


@router.post("/useInviteToken")
async def use_invite_token(request: Request, actor: RocketChatActor, database: DatabaseDep) -> Any:
    """userdesk invite links create accounts; a signed-in user has no room to join. The
    token is checked (invalid, expired) and the answer says so."""
    del actor
    body = await body_of(request)
    try:
        await _check(database, text(body.get("token"), "token"))
    except InvitationInvalid as exc:
        if exc.reason == "expired":
            raise RocketChatError("error-invite-expired", "The invite token has expired") from None
        raise RocketChatError("error-invalid-token", "The invite token is invalid") from None
    raise RocketChatError(
        "error-action-not-allowed",
        "userdesk has no rooms: an invite link creates an account (users.register with the "
        "link as secretURL)",
    )
