"""The Edit User panel's form: what was typed, and saving it through the actions.

One Save may touch the profile, the picture, the roles, the password and the welcome email;
each goes through its own action (with that action's permission and rules), all in one
transaction, so a refusal of any part leaves nothing half-written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile

from userdesk.actions import passwords as password_actions
from userdesk.actions import users as user_actions
from userdesk.actions.abilities import holds_all_of
from userdesk.actions.context import Actor
from userdesk.actions.inputs import AdminPasswordReset, UserUpdate
from userdesk.errors import Conflict, FieldError, InvalidInput
from userdesk.http.web.render import read_shown, shown_json
from userdesk.models import AvatarKind, Role, User

# The text fields of the form, in the order they are shown; empty clears an optional one.
TEXT_FIELDS = (
    "name",
    "given_name",
    "family_name",
    "nickname",
    "username",
    "email",
    "status_message",
    "bio",
    "timezone",
    "voip_extension",
)
REQUIRED = frozenset({"name", "username", "email"})
PASSWORD_MODES = ("keep", "manual", "random")
AVATAR_MODES = ("keep", "initials", "url", "upload")


@dataclass
class EditForm:
    values: dict[str, str]
    email_verified: bool
    roles: list[str]
    password_mode: str = "keep"
    password: str = ""
    require_password_change: bool = True
    send_welcome_email: bool = False
    avatar_mode: str = "keep"
    avatar_url: str = ""
    upload: bytes | None = None
    errors: dict[str, str] = field(default_factory=dict)
    # What the form showed when it was loaded (see render.shown_json).
    shown: dict[str, Any] | None = None

    @property
    def shown_json(self) -> str:
        return shown_json(
            self.shown
            or {
                "values": self.values,
                "email_verified": self.email_verified,
                "roles": self.roles,
                "avatar_url": self.avatar_url,
            }
        )

    @classmethod
    def of(cls, user: User) -> EditForm:
        return cls(
            values={name: getattr(user, name) or "" for name in TEXT_FIELDS},
            email_verified=user.email_verified,
            roles=sorted(role.name for role in user.roles),
            avatar_url=user.avatar_url or "",
        )

    @classmethod
    async def parse(cls, form: FormData) -> EditForm:
        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        # The request's size is capped before it gets here (USERDESK_MAX_BODY_BYTES).
        upload = form.get("avatar_file")
        data: bytes | None = None
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read()
        password_mode = text("password_mode")
        avatar_mode = text("avatar_mode")
        return cls(
            values={name: text(name) for name in TEXT_FIELDS},
            email_verified=text("email_verified") == "on",
            roles=sorted({r for r in form.getlist("roles") if isinstance(r, str)}),
            password_mode=password_mode if password_mode in PASSWORD_MODES else "keep",
            password=text("password"),
            require_password_change=text("require_password_change") == "on",
            send_welcome_email=text("send_welcome_email") == "on",
            avatar_mode=avatar_mode if avatar_mode in AVATAR_MODES else "keep",
            avatar_url=text("avatar_url").strip(),
            upload=data,
            shown=read_shown(form),
        )

    def _left_alone(self, name: str, typed: Any) -> bool:
        """Whether a field still holds what the form showed (then it is not sent, so a
        change someone else made meanwhile stays)."""
        if self.shown is None:
            return False
        shown = self.shown.get("values", {}).get(name) if name in TEXT_FIELDS else None
        if name not in TEXT_FIELDS:
            shown = self.shown.get(name)
        if isinstance(typed, str) and isinstance(shown, str):
            return typed.strip() == shown.strip()
        return bool(typed == shown)

    def roles_left_alone(self) -> bool:
        shown = (self.shown or {}).get("roles")
        return isinstance(shown, list) and sorted(shown) == self.roles

    def profile_changes(self, user: User) -> dict[str, Any]:
        """The fields whose typed value differs from what was shown and from the user's, as
        UserUpdate takes them."""
        changes: dict[str, Any] = {}
        for name in TEXT_FIELDS:
            if self._left_alone(name, self.values[name]):
                continue
            typed = self.values[name] if name == "bio" else self.values[name].strip()
            value: str | None = typed if typed or name in REQUIRED else None
            if value != getattr(user, name):
                changes[name] = value
        if (
            not self._left_alone("email_verified", self.email_verified)
            and self.email_verified != user.email_verified
        ):
            changes["email_verified"] = self.email_verified
        if self.avatar_mode == "initials" and user.avatar_kind is not AvatarKind.INITIALS:
            changes["avatar_url"] = None
        if self.avatar_mode == "url" and self.avatar_url != (user.avatar_url or ""):
            changes["avatar_url"] = self.avatar_url
        return changes


def _field_of(error: FieldError) -> str:
    # The picture's URL and upload are one field on the form.
    return "avatar" if error.field in ("avatar_url", "image") else error.field


async def save(session: AsyncSession, *, actor: Actor, user: User, form: EditForm) -> list[str]:
    """Apply the form; return what was done, for the toast. Raises InvalidInput (with the
    form's field names) or another DomainError, after which the caller rolls back."""
    done: list[str] = []
    changes = form.profile_changes(user)
    try:
        update = UserUpdate.model_validate(changes) if changes else None
    except ValidationError as exc:
        raise InvalidInput.from_pydantic(exc.errors(), drop_location=False) from None
    if update is not None:
        await user_actions.update_user(session, actor=actor, user_id=user.public_id, data=update)
        done.append("profile saved")
    if form.avatar_mode == "upload":
        if form.upload is None:
            raise InvalidInput.one("avatar", "required", "choose a picture to upload")
        await user_actions.set_avatar_image(
            session, actor=actor, user_id=user.public_id, image=form.upload
        )
        done.append("picture uploaded")
    current_roles = sorted(role.name for role in user.roles)
    if not form.roles_left_alone() and form.roles != current_roles:
        if not form.roles:
            raise InvalidInput.one("roles", "required", "choose at least one role")
        await user_actions.set_roles(session, actor=actor, user_id=user.public_id, roles=form.roles)
        done.append("roles changed")
    if form.password_mode != "keep":
        if form.password_mode == "manual" and not form.password:
            raise InvalidInput.one("password", "required", "type the new password")
        try:
            reset = AdminPasswordReset(
                mode="manual" if form.password_mode == "manual" else "random",
                password=form.password if form.password_mode == "manual" else None,
                require_password_change=form.require_password_change,
            )
        except ValidationError as exc:
            raise InvalidInput.from_pydantic(exc.errors(), drop_location=False) from None
        await password_actions.reset_password(
            session, actor=actor, user_id=user.public_id, data=reset
        )
        done.append(
            "a random password emailed" if form.password_mode == "random" else "password set"
        )
    if form.send_welcome_email:
        await user_actions.send_welcome_email(session, actor=actor, user_id=user.public_id)
        done.append("welcome email queued")
    return done


def errors_by_field(exc: InvalidInput | Conflict) -> dict[str, str]:
    if isinstance(exc, Conflict):
        return {exc.field or "form": exc.message}
    errors: dict[str, str] = {}
    for error in exc.errors:
        errors.setdefault(_field_of(error), error.message)
    return errors


@dataclass(frozen=True)
class RoleChoice:
    name: str
    checked: bool
    grantable: bool


def role_choices(actor: Actor, roles: list[Role], chosen: list[str]) -> list[RoleChoice]:
    """Every role, checked as chosen; the ones carrying a permission the viewer lacks can be
    neither given nor taken away by them, so they are shown disabled."""
    return [
        RoleChoice(
            name=role.name,
            checked=role.name in chosen,
            grantable=holds_all_of(actor, role),
        )
        for role in roles
    ]
