"""The Invitations page (invite by email with one result per address, the invitations by
status with Resend and Revoke, shareable invite links) and the New user form.

Everything goes through the same actions as POST /api/v1/invitations, /api/v1/invite-links
and /api/v1/users. An invite link's URL exists only in the answer that creates it (the
database keeps a digest), so the page shows it once, beside a Copy button, and never again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions import invitations as invitation_actions
from userdesk.actions import users as user_actions
from userdesk.actions.abilities import grantable_roles
from userdesk.actions.inputs import InvitationCreate, InviteLinkCreate, UserCreate
from userdesk.actions.passwords import policy_of
from userdesk.errors import Conflict, InvalidInput, SeatLimitReached
from userdesk.http.web.render import (
    MAIL_WARNING,
    ConsoleRoute,
    FormText,
    Viewer,
    ViewerDep,
    field_errors,
    fragments,
    is_htmx,
    page,
    redirect,
    render,
    toast,
)
from userdesk.models import Role
from userdesk.queries import invitations as invitation_queries
from userdesk.queries import roles as role_queries
from userdesk.queries.invitations import InvitationStatus, InviteLinkItem
from userdesk.queries.workspace import get_seats
from userdesk.security.permissions import DEFAULT_HUMAN_ROLE, Permission

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
FormChoices = Annotated[list[str], Form()]

PAGE_SIZE = 25
LINKS_SHOWN = 50
STATUS_TABS = (
    ("", "All"),
    ("pending", "Pending"),
    ("accepted", "Accepted"),
    ("expired", "Expired"),
    ("revoked", "Revoked"),
)
RESULT_LABELS = {
    invitation_actions.INVITED: "Invited",
    invitation_actions.REINVITED: "Invited again",
    invitation_actions.MEMBER: "Already a member",
    invitation_actions.INVALID: "Not sent",
}
# Where a form field's errors show: the input's field name as the actions report it.
FIELD_OF = {"emails": "emails", "roles": "role", "expires_in_days": "expires_in_days"}
LINK_EXPIRY_DEFAULT = 7
NEW_USER_PAGE = "/users/new"


@dataclass(frozen=True)
class ListView:
    """The invitations list as its URL says: a status (or all) and the page's cursor."""

    status: str = ""
    cursor: str = ""

    @classmethod
    def parse(cls, params: dict[str, str]) -> ListView:
        status = params.get("status", "")
        return cls(
            status=status if status in InvitationStatus.__members__.values() else "",
            cursor=params.get("cursor", "")[:200],
        )

    def url(self, **changes: str) -> str:
        if "status" in changes:
            changes = {"cursor": "", **changes}
        view = replace(self, **changes)
        query = urlencode(
            {k: v for k, v in (("status", view.status), ("cursor", view.cursor)) if v}
        )
        return "/invitations" + (f"?{query}" if query else "")


def _view_of_caller(request: Request) -> ListView:
    """The list an action was taken from: the page's URL as htmx reports it."""
    parts = urlsplit(request.headers.get("hx-current-url") or "")
    if parts.path != "/invitations":
        return ListView()
    return ListView.parse(dict(parse_qsl(parts.query)))


def _errors_of(exc: InvalidInput) -> dict[str, str]:
    """Field errors keyed by the form's field names (`roles.0` is the role select)."""
    errors: dict[str, str] = {}
    for field, message in field_errors(exc).items():
        name = field.split(".")[0]
        errors.setdefault(FIELD_OF.get(name, name), _sentence(message))
    return errors


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _invalid(exc: ValidationError) -> InvalidInput:
    return InvalidInput.from_pydantic(exc.errors(), drop_location=False)


async def _roles(session: AsyncSession, viewer: Viewer) -> list[Role]:
    roles = await role_queries.roles_only(session, viewer=viewer.actor)
    return grantable_roles(viewer.actor, roles)


async def _list_values(session: AsyncSession, viewer: Viewer, view: ListView) -> dict[str, Any]:
    listing = await invitation_queries.list_invitations(
        session,
        viewer=viewer.actor,
        status=InvitationStatus(view.status) if view.status else None,
        limit=PAGE_SIZE,
        cursor=view.cursor or None,
    )
    return {
        "view": view,
        "tabs": STATUS_TABS,
        "invitations": listing.items,
        "next_cursor": listing.next_cursor,
    }


def _invite_form(
    *, emails: str = "", role: str = DEFAULT_HUMAN_ROLE, **values: Any
) -> dict[str, Any]:
    return {
        "emails": emails,
        "role": role,
        "errors": {},
        "results": None,
        "summary": "",
        "refusal": None,
        "warning": None,
        "labels": RESULT_LABELS,
        **values,
    }


def _link_form(**values: Any) -> dict[str, Any]:
    return {
        "expires_in_days": str(LINK_EXPIRY_DEFAULT),
        "max_uses": "",
        "role": DEFAULT_HUMAN_ROLE,
        "errors": {},
        **values,
    }


async def _page_values(
    session: AsyncSession,
    viewer: Viewer,
    view: ListView,
    *,
    invite: dict[str, Any] | None = None,
    link_form: dict[str, Any] | None = None,
    fresh: list[tuple[InviteLinkItem, str]] | None = None,
) -> dict[str, Any]:
    links = await invitation_queries.list_invite_links(
        session, viewer=viewer.actor, limit=LINKS_SHOWN
    )
    fresh = fresh or []
    fresh_ids = {item.link.public_id for item, _ in fresh}
    seats = (
        await get_seats(session, viewer=viewer.actor) if viewer.can(Permission.SEATS_READ) else None
    )
    return {
        "viewer": viewer,
        "section": "invitations",
        "banner_mail": True,
        "roles": await _roles(session, viewer),
        "seats": seats,
        "invite": invite or _invite_form(),
        "link_form": link_form or _link_form(),
        "fresh": fresh,
        "links": [item for item in links.items if item.link.public_id not in fresh_ids],
        "more_links": links.next_cursor is not None,
        **await _list_values(session, viewer, view),
    }


async def _full_page(
    request: Request, viewer: Viewer, *, status: int = 200, **values: Any
) -> HTMLResponse:
    view = ListView.parse(dict(request.query_params))
    async with request.app.state.database.reader() as session:
        return page(
            "invitations.html",
            status=status,
            **await _page_values(session, viewer, view, **values),
        )


@router.get("/invitations", response_class=HTMLResponse)
async def invitations_page(request: Request, viewer: ViewerDep) -> Response:
    if is_htmx(request) and request.headers.get("hx-target") == "invitation-list":
        view = ListView.parse(dict(request.query_params))
        async with request.app.state.database.reader() as session:
            values = await _list_values(session, viewer, view)
        return page("_invite_list.html", viewer=viewer, **values)
    return await _full_page(request, viewer)


def _summary(results: list[invitation_actions.InviteResult]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    words = {
        invitation_actions.INVITED: "invited",
        invitation_actions.REINVITED: "invited again",
        invitation_actions.MEMBER: "already a member",
        invitation_actions.INVALID: "not sent",
    }
    return ", ".join(
        f"{counts[status]} {word}" for status, word in words.items() if status in counts
    )


@router.post("/invitations", response_class=HTMLResponse)
async def invite(
    request: Request, viewer: ViewerDep, emails: FormText = "", role: FormText = ""
) -> Response:
    """One result per address, in place; the list below refreshes out of band."""
    role = role or DEFAULT_HUMAN_ROLE
    form = {"emails": emails[:40_000], "role": role}
    status = 200
    answer: dict[str, Any]
    if not emails.strip():
        status, answer = 422, _invite_form(**form, errors={"emails": "Enter at least one address."})
    else:
        try:
            data = InvitationCreate(emails=[emails], roles=[role])
            async with request.app.state.database.transaction() as session:
                outcome = await invitation_actions.invite(session, actor=viewer.actor, data=data)
        except ValidationError as exc:
            status, answer = 422, _invite_form(**form, errors=_errors_of(_invalid(exc)))
        except InvalidInput as exc:
            status, answer = 422, _invite_form(**form, errors=_errors_of(exc))
        except SeatLimitReached as exc:
            status, answer = 409, _invite_form(**form, refusal=_sentence(exc.message))
        else:
            # The addresses to correct stay in the box; the others were dealt with.
            again = [
                r.email
                for r in outcome.results
                if r.status == invitation_actions.INVALID
                and r.reason != invitation_actions.DUPLICATE
            ]
            answer = _invite_form(
                emails="\n".join(again),
                role=role,
                results=outcome.results,
                summary=_summary(outcome.results),
                warning=outcome.warning,
            )
    if not is_htmx(request):
        return await _full_page(request, viewer, status=status, invite=answer)
    async with request.app.state.database.reader() as session:
        roles = await _roles(session, viewer)
        listing = await _list_values(session, viewer, _view_of_caller(request))
    parts = [render("_invite_form.html", viewer=viewer, roles=roles, invite=answer)]
    if answer["results"] is not None:
        parts.append(render("_invite_list.html", viewer=viewer, oob=True, **listing))
        sent = any(
            r.status in (invitation_actions.INVITED, invitation_actions.REINVITED)
            for r in answer["results"]
        )
        parts.append(
            toast(f"Invitations: {answer['summary']}.", kind="success" if sent else "error")
        )
    return fragments(*parts, status=status)


async def _after_invitation_change(
    request: Request, viewer: Viewer, message: str, warning: str | None
) -> Response:
    """The refreshed list of the view the action was taken from, and toasts."""
    view = _view_of_caller(request)
    if not is_htmx(request):
        return redirect(request, view.url())
    async with request.app.state.database.reader() as session:
        values = await _list_values(session, viewer, view)
    parts = [render("_invite_list.html", viewer=viewer, oob=False, **values), toast(message)]
    if warning:
        parts.append(toast(MAIL_WARNING, kind="warning"))
    return fragments(*parts)


@router.post("/invitations/{invitation_id}/resend", response_class=HTMLResponse)
async def resend_invitation(request: Request, invitation_id: str, viewer: ViewerDep) -> Response:
    async with request.app.state.database.transaction() as session:
        invitation, warning = await invitation_actions.resend_invitation(
            session, actor=viewer.actor, invitation_id=invitation_id
        )
        message = f"The invitation to {invitation.email} was sent again with a new link."
    return await _after_invitation_change(request, viewer, message, warning)


@router.post("/invitations/{invitation_id}/revoke", response_class=HTMLResponse)
async def revoke_invitation(request: Request, invitation_id: str, viewer: ViewerDep) -> Response:
    async with request.app.state.database.transaction() as session:
        item = await invitation_queries.get_invitation(
            session, viewer=viewer.actor, invitation_id=invitation_id
        )
        await invitation_actions.revoke_invitation(
            session, actor=viewer.actor, invitation_id=invitation_id
        )
    message = f"The invitation to {item.invitation.email} was revoked: its link no longer works."
    return await _after_invitation_change(request, viewer, message, None)


@router.post("/invite-links", response_class=HTMLResponse)
async def create_invite_link(
    request: Request,
    viewer: ViewerDep,
    expires_in_days: FormText = "",
    max_uses: FormText = "",
    role: FormText = "",
) -> Response:
    """The new link, with its URL this once, at the top of the list."""
    role = role or DEFAULT_HUMAN_ROLE
    form = {"expires_in_days": expires_in_days[:10], "max_uses": max_uses[:10], "role": role}
    try:
        data = InviteLinkCreate(
            expires_in_days=expires_in_days.strip() or LINK_EXPIRY_DEFAULT,
            max_uses=max_uses.strip() or None,
            roles=[role],
        )
        async with request.app.state.database.transaction() as session:
            created = await invitation_actions.create_invite_links(
                session, actor=viewer.actor, data=data
            )
            fresh = [
                (
                    await invitation_queries.get_invite_link(
                        session, viewer=viewer.actor, link_id=c.link.public_id
                    ),
                    c.url,
                )
                for c in created
            ]
    except (ValidationError, InvalidInput) as exc:
        invalid = _invalid(exc) if isinstance(exc, ValidationError) else exc
        errors = _errors_of(invalid)
        if is_htmx(request):
            async with request.app.state.database.reader() as session:
                roles = await _roles(session, viewer)
            return page(
                "_invite_link_form.html",
                status=422,
                headers={"HX-Retarget": "#link-form", "HX-Reswap": "outerHTML"},
                viewer=viewer,
                roles=roles,
                link_form=_link_form(**form, errors=errors),
            )
        return await _full_page(
            request, viewer, status=422, link_form=_link_form(**form, errors=errors)
        )
    if not is_htmx(request):
        return await _full_page(request, viewer, fresh=fresh)
    async with request.app.state.database.reader() as session:
        roles = await _roles(session, viewer)
    parts = [
        *(render("_invite_link.html", viewer=viewer, item=item, url=url) for item, url in fresh),
        render(
            "_invite_link_form.html", viewer=viewer, roles=roles, link_form=_link_form(), oob=True
        ),
        '<li id="no-links" hx-swap-oob="delete"></li>',
        toast("Invite link created: copy it now, it is shown only this once."),
    ]
    return fragments(*parts)


@router.post("/invite-links/{link_id}/revoke", response_class=HTMLResponse)
async def revoke_invite_link(request: Request, link_id: str, viewer: ViewerDep) -> Response:
    async with request.app.state.database.transaction() as session:
        await invitation_actions.revoke_invite_link(session, actor=viewer.actor, link_id=link_id)
    if not is_htmx(request):
        return redirect(request, "/invitations")
    async with request.app.state.database.reader() as session:
        item = await invitation_queries.get_invite_link(
            session, viewer=viewer.actor, link_id=link_id
        )
    parts = [
        render("_invite_link.html", viewer=viewer, item=item, url=None),
        toast("The invite link was revoked: nobody can join through it any more."),
    ]
    return fragments(*parts)


# The New user form. Its routes are registered before the Users page's
# POST /users/{user_id}/{action}, which would otherwise take POST /users/new/check.


def _new_user_fields(**values: Any) -> dict[str, Any]:
    return {
        "name": "",
        "username": "",
        "email": "",
        "require_password_change": True,
        "email_verified": False,
        "send_welcome_email": True,
        "chosen": [DEFAULT_HUMAN_ROLE],
        **values,
    }


async def _new_user_form(
    request: Request,
    viewer: Viewer,
    *,
    status: int = 200,
    fields: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    refusal: str | None = None,
    password: str = "",
    created: str | None = None,
) -> HTMLResponse:
    """The form; after a refusal, the policy's rules as the refused password met them (the
    password itself is not sent back)."""
    fields = fields or _new_user_fields()
    errors = dict(errors or {})
    async with request.app.state.database.reader() as session:
        policy = await policy_of(session)
        roles = await _roles(session, viewer)
    rules = policy.check(
        password[:4096], username=fields["username"] or None, email=fields["email"] or None
    )
    unmet = [rule.message for rule in rules if not rule.passed]
    if password and unmet:
        # Also when another field's error kept the action from judging the password.
        errors.setdefault("password", _sentence(f"must meet the policy: {unmet[0]}"))
    values: dict[str, Any] = {
        "viewer": viewer,
        "section": "users",
        "banner_mail": True,
        "created": created,
        "roles": roles,
        "form": fields,
        "errors": errors,
        "refusal": refusal,
        "max_length": policy.max_length,
        "rules": rules,
        "checked": bool(password),
    }
    template = "_new_user_form.html" if is_htmx(request) else "new_user.html"
    return page(template, status=status, **values)


@router.get(NEW_USER_PAGE, response_class=HTMLResponse)
async def new_user_page(
    request: Request, viewer: ViewerDep, created: str | None = None
) -> Response:
    viewer.actor.require(Permission.USERS_CREATE)
    return await _new_user_form(request, viewer, created=(created or "")[:64] or None)


@router.post(NEW_USER_PAGE + "/check", response_class=HTMLResponse)
async def check_new_user_password(
    request: Request,
    viewer: ViewerDep,
    password: FormText = "",
    username: FormText = "",
    email: FormText = "",
) -> Response:
    """Live feedback: each rule of the policy, met or not, for the password typed so far and
    the username and email typed so far (a password may not contain them)."""
    async with request.app.state.database.reader() as session:
        policy = await policy_of(session)
    rules = policy.check(
        password[:4096], username=username[:320] or None, email=email[:320] or None
    )
    return page("_policy_feedback.html", rules=rules, checked=bool(password))


@router.post(NEW_USER_PAGE, response_class=HTMLResponse)
async def create_user(
    request: Request,
    viewer: ViewerDep,
    name: FormText = "",
    username: FormText = "",
    email: FormText = "",
    password: FormText = "",
    require_password_change: FormText = "",
    email_verified: FormText = "",
    send_welcome_email: FormText = "",
    roles: FormChoices | None = None,
) -> Response:
    """The same creation as POST /api/v1/users; then the Users page with the new user open."""
    chosen = roles or []
    fields = _new_user_fields(
        name=name[:400],
        username=username[:200],
        email=email[:400],
        require_password_change=bool(require_password_change),
        email_verified=bool(email_verified),
        send_welcome_email=bool(send_welcome_email),
        chosen=chosen,
    )
    try:
        data = UserCreate(
            name=name,
            username=username,
            email=email,
            password=password or None,
            require_password_change=bool(require_password_change),
            email_verified=bool(email_verified),
            send_welcome_email=bool(send_welcome_email),
            roles=chosen or None,
        )
        async with request.app.state.database.transaction() as session:
            user = await user_actions.create_user(session, actor=viewer.actor, data=data)
            public_id = user.public_id
    except (ValidationError, InvalidInput) as exc:
        invalid = _invalid(exc) if isinstance(exc, ValidationError) else exc
        return await _new_user_form(
            request,
            viewer,
            status=422,
            fields=fields,
            errors=_errors_of(invalid),
            password=password,
        )
    except Conflict as exc:
        # A taken username or address beside its field; the seat limit above the form.
        return await _new_user_form(
            request,
            viewer,
            status=409,
            fields=fields,
            errors={exc.field: _sentence(exc.message)} if exc.field else {},
            refusal=None if exc.field else _sentence(exc.message),
            password=password,
        )
    if viewer.can(Permission.USERS_READ):
        return redirect(request, f"/users?{urlencode({'user': public_id})}")
    # Someone who may create users but not list them starts another one.
    return redirect(request, f"{NEW_USER_PAGE}?{urlencode({'created': username})}")
