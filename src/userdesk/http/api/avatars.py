"""/api/v1/users/{id}/avatar: upload, show and remove a profile picture."""

from __future__ import annotations

import hashlib
from html import escape

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from userdesk.actions import users as user_actions
from userdesk.actions.inputs import UserUpdate
from userdesk.http.deps import ActorDep, DatabaseDep
from userdesk.http.problems import problem_responses
from userdesk.models import AvatarImage, AvatarKind, User
from userdesk.queries import users as user_queries
from userdesk.views import UserView

router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=problem_responses())

_PALETTE = ("#1d4ed8", "#047857", "#b45309", "#7c3aed", "#be123c", "#0e7490", "#4d7c0f", "#9d174d")


def initials(name: str) -> str:
    """First letters of the first and last words: "Zoë de la Cruz" -> "ZC"."""
    firsts = [c for c in (next((c for c in w if c.isalnum()), "") for w in name.split()) if c]
    return "".join(firsts[:1] + firsts[1:][-1:]).upper() or "?"


def initials_svg(user: User) -> str:
    colour = _PALETTE[int(hashlib.sha256(user.public_id.encode()).hexdigest(), 16) % len(_PALETTE)]
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">'
        f'<rect width="256" height="256" fill="{colour}"/>'
        '<text x="50%" y="50%" dy=".35em" text-anchor="middle" fill="#fff" '
        'font-family="system-ui, sans-serif" font-size="104">'
        f"{escape(initials(user.name))}</text></svg>"
    )


@router.get(
    "/{user_id}/avatar",
    responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}, 302: {}},
    response_class=Response,
)
async def get_avatar(
    user_id: str, request: Request, actor: ActorDep, database: DatabaseDep
) -> Response:
    """The uploaded picture (PNG), a redirect to the picture's URL, or initials as SVG."""
    async with database.reader() as session:
        user, image = await user_queries.get_avatar(session, viewer=actor, user_id=user_id)
    return avatar_response(request, user, image)


def avatar_response(request: Request, user: User, image: AvatarImage | None) -> Response:
    """A user's picture as an answer (here and at Rocket.Chat's /avatar/<username>)."""
    headers = {"Cache-Control": "private, max-age=300"}
    if user.avatar_kind is AvatarKind.UPLOAD and image is not None:
        etag = f'"{image.digest}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={**headers, "ETag": etag})
        return Response(
            image.data, media_type=image.content_type, headers={**headers, "ETag": etag}
        )
    if user.avatar_kind is AvatarKind.URL and user.avatar_url:
        return RedirectResponse(user.avatar_url, status_code=302, headers=headers)
    return Response(
        initials_svg(user),
        media_type="image/svg+xml",
        headers={
            **headers,
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )


@router.put(
    "/{user_id}/avatar",
    response_model=UserView,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("image/png", "image/jpeg", "image/gif", "image/webp")
            },
        }
    },
)
async def upload_avatar(
    user_id: str, request: Request, actor: ActorDep, database: DatabaseDep
) -> UserView:
    """Send the picture as the raw body (PNG, JPEG, GIF or WebP). It is cropped to a square,
    resized to 256x256 and stored as PNG without its metadata."""
    image = await request.body()
    async with database.transaction() as session:
        user = await user_actions.set_avatar_image(
            session, actor=actor, user_id=user_id, image=image
        )
        return UserView.of(user)


@router.delete("/{user_id}/avatar", response_model=UserView)
async def remove_avatar(user_id: str, actor: ActorDep, database: DatabaseDep) -> UserView:
    """Back to initials."""
    async with database.transaction() as session:
        user = await user_actions.update_user(
            session, actor=actor, user_id=user_id, data=UserUpdate(avatar_url=None)
        )
        return UserView.of(user)
