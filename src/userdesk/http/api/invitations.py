"""/api/v1/invitations, /api/v1/invite-links and /api/v1/join: inviting people and joining."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from userdesk.actions import invitations as invitation_actions
from userdesk.actions.inputs import InvitationCreate, InviteLinkCreate, JoinRequest
from userdesk.actions.passwords import policy_of
from userdesk.http.deps import SESSION_COOKIE, ActorDep, DatabaseDep
from userdesk.http.problems import PROBLEM_JSON, Problem, problem_responses
from userdesk.queries import invitations as invitation_queries
from userdesk.queries.invitations import InvitationStatus, InviteLinkStatus
from userdesk.views import (
    CreatedInviteLinksView,
    CreatedInviteLinkView,
    InvitationListView,
    InvitationResentView,
    InvitationResultView,
    InvitationsSentView,
    InvitationView,
    InviteLinkListView,
    InviteLinkView,
    JoinedView,
    JoinInfoView,
    PasswordPolicyView,
    UserView,
)

router = APIRouter(prefix="/api/v1", tags=["invitations"], responses=problem_responses())

GONE: dict[int | str, dict[str, Any]] = {
    410: {
        "model": Problem,
        "description": "The invitation or invite link is unknown, expired, withdrawn or used",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}
Limit = Annotated[int, Query(ge=1, le=invitation_queries.MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=200)]


def _facts(request: Request) -> dict[str, str | None]:
    return {
        "ip": request.client.host if request.client else None,
        "user_agent": request.headers.get("user-agent"),
    }


@router.post("/invitations", response_model=InvitationsSentView)
async def invite(
    body: InvitationCreate, actor: ActorDep, database: DatabaseDep
) -> InvitationsSentView:
    """Invite up to 500 addresses (a list, or one string separated by commas, semicolons,
    spaces or line breaks) with `roles` (default: user). One result per address, in order:
    `invited`; `reinvited` (it had a pending invitation: new link, new expiry, emailed
    again); `member` (a user has the address); `invalid` (`reason` says why; a repeated
    address is invalid after its first occurrence). Pending invitations hold seats: more new
    addresses than free seats is a 409 and nothing is sent."""
    async with database.transaction() as session:
        outcome = await invitation_actions.invite(session, actor=actor, data=body)
    return InvitationsSentView(
        results=[
            InvitationResultView(email=r.email, status=r.status, reason=r.reason)
            for r in outcome.results
        ],
        warning=outcome.warning,
    )


@router.get("/invitations", response_model=InvitationListView)
async def list_invitations(
    actor: ActorDep,
    database: DatabaseDep,
    status: InvitationStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> InvitationListView:
    """Newest first (users.create)."""
    async with database.reader() as session:
        page = await invitation_queries.list_invitations(
            session, viewer=actor, status=status, limit=limit, cursor=cursor
        )
        return InvitationListView(
            items=[InvitationView.of(item) for item in page.items], next_cursor=page.next_cursor
        )


@router.post("/invitations/{invitation_id}/resend", response_model=InvitationResentView)
async def resend_invitation(
    invitation_id: str, actor: ActorDep, database: DatabaseDep
) -> InvitationResentView:
    """Email a pending or expired invitation again with a new link (the old one dies) and a
    new expiry."""
    async with database.transaction() as session:
        invitation, warning = await invitation_actions.resend_invitation(
            session, actor=actor, invitation_id=invitation_id
        )
        item = await invitation_queries.invitation_item(session, invitation)
        return InvitationResentView(invitation=InvitationView.of(item), warning=warning)


@router.delete("/invitations/{invitation_id}", status_code=204)
async def revoke_invitation(invitation_id: str, actor: ActorDep, database: DatabaseDep) -> Response:
    """Withdraw an invitation: its link dies and its seat frees."""
    async with database.transaction() as session:
        await invitation_actions.revoke_invitation(
            session, actor=actor, invitation_id=invitation_id
        )
    return Response(status_code=204)


@router.post("/invite-links", status_code=201, response_model=CreatedInviteLinksView)
async def create_invite_links(
    body: InviteLinkCreate, actor: ActorDep, database: DatabaseDep
) -> CreatedInviteLinksView:
    """`count` shareable links, each valid `expires_in_days` for up to `max_uses` people
    (null: any number). Their URLs are in this answer only."""
    async with database.transaction() as session:
        created = await invitation_actions.create_invite_links(session, actor=actor, data=body)
        return CreatedInviteLinksView(
            links=[
                CreatedInviteLinkView(
                    id=c.link.public_id,
                    url=c.url,
                    expires_at=c.link.expires_at,
                    max_uses=c.link.max_uses,
                    uses=c.link.uses,
                    roles=list(c.link.roles),
                )
                for c in created
            ]
        )


@router.get("/invite-links", response_model=InviteLinkListView)
async def list_invite_links(
    actor: ActorDep,
    database: DatabaseDep,
    status: InviteLinkStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> InviteLinkListView:
    """Newest first, without their URLs (users.create)."""
    async with database.reader() as session:
        page = await invitation_queries.list_invite_links(
            session, viewer=actor, status=status, limit=limit, cursor=cursor
        )
        return InviteLinkListView(
            items=[InviteLinkView.of(item) for item in page.items], next_cursor=page.next_cursor
        )


@router.delete("/invite-links/{link_id}", status_code=204)
async def revoke_invite_link(link_id: str, actor: ActorDep, database: DatabaseDep) -> Response:
    async with database.transaction() as session:
        await invitation_actions.revoke_invite_link(session, actor=actor, link_id=link_id)
    return Response(status_code=204)


@router.get("/join/{token}", response_model=JoinInfoView, responses=GONE)
async def join_info(token: str, database: DatabaseDep) -> JoinInfoView:
    """Public. Whether a join token works, for the join page: 410 invitation_invalid when it
    is unknown, expired, withdrawn or used; 409 seat_limit_reached when an invite link's
    workspace has no free seat."""
    async with database.reader() as session:
        info = await invitation_actions.join_info(session, token=token)
        policy = await policy_of(session, info.workspace)
        invitation = info.invite.invitation
        return JoinInfoView(
            workspace=info.workspace.name,
            kind=info.invite.kind,
            email=invitation.email if invitation is not None else None,
            expires_at=info.invite.expires_at,
            password_policy=PasswordPolicyView.of(policy),
        )


@router.post("/join/{token}", status_code=201, response_model=JoinedView, responses=GONE)
async def join(
    token: str, body: JoinRequest, request: Request, response: Response, database: DatabaseDep
) -> JoinedView:
    """Public. Create one's account through an invitation (its address, verified) or an
    invite link (`email` required) and sign in: sets the session cookie, as /auth/login
    does, unless the workspace requires a verified address first (`signed_in` false)."""
    async with database.transaction() as session:
        joined = await invitation_actions.join(session, token=token, data=body, **_facts(request))
        view = JoinedView(user=UserView.of(joined.user), signed_in=joined.secret is not None)
    if joined.secret is not None:
        response.set_cookie(
            SESSION_COOKIE,
            joined.secret,
            httponly=True,
            secure=request.app.state.settings.cookie_secure,
            samesite="lax",
            path="/",
        )
    return view
