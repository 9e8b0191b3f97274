"""The Settings page: the workspace's settings in sections (workspace, email, password policy,
registration and sign-in), each a form of its own with its own Save, and "Send test email".

A Save sends the settings action (the one behind PATCH /api/v1/settings) only the fields of
its section whose typed value differs from what the form showed, so saving one section never
touches another's, nor a value someone else changed meanwhile in a field left alone. A refusal comes
back beside its field (422) with what was typed kept; htmx swaps just that section. The SMTP
password is write-only: the page shows whether one is stored, never the password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from userdesk.actions.inputs import SettingsUpdate, TestEmail
from userdesk.actions.outbox import mail_configured
from userdesk.actions.settings import update_settings
from userdesk.errors import Conflict, FieldError, InvalidInput, NotFound
from userdesk.http.web.render import (
    ConsoleRoute,
    Viewer,
    ViewerDep,
    field_errors,
    fragments,
    is_htmx,
    page,
    read_shown,
    redirect,
    render,
    shown_json,
    toast,
)
from userdesk.mail.worker import send_test_email
from userdesk.models import Workspace
from userdesk.queries import roles as role_queries
from userdesk.queries.workspace import get_seats, get_settings
from userdesk.security.password_policy import PasswordPolicy
from userdesk.security.permissions import Permission

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

SETTINGS_PAGE = "/settings"
WHOLE_NUMBER = re.compile(r"[+-]?\d{1,12}")
MAIL_OFF_WARNING = (
    "Email is not configured any more: emails are kept in the Mail page (the built-in mail "
    "catcher) and nobody receives them."
)


@dataclass(frozen=True)
class Section:
    """One form of the page: its settings by kind. A nullable setting is cleared (null) by
    an empty field; an empty required one is refused."""

    name: str
    title: str
    texts: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    nullable: frozenset[str] = frozenset()
    roles: str | None = None
    # The write-only SMTP password: typed to replace, or removed with a checkbox.
    secret: str | None = None

    @property
    def fields(self) -> frozenset[str]:
        extra = {name for name in (self.roles, self.secret) if name}
        return frozenset({*self.texts, *self.numbers, *self.checks, *extra})


SECTIONS = {
    section.name: section
    for section in (
        Section(
            "workspace",
            "Workspace",
            texts=("name",),
            numbers=("seat_limit",),
            nullable=frozenset({"seat_limit"}),
        ),
        Section(
            "email",
            "Email",
            texts=(
                "smtp_host",
                "smtp_security",
                "smtp_username",
                "mail_from_address",
                "mail_from_name",
            ),
            numbers=("smtp_port", "mail_max_attempts"),
            nullable=frozenset(
                {"smtp_host", "smtp_port", "smtp_username", "mail_from_address", "mail_from_name"}
            ),
            secret="smtp_password",
        ),
        Section(
            "password",
            "Password policy",
            numbers=("password_min_length", "password_max_length", "password_max_repeated"),
            checks=(
                "password_require_lowercase",
                "password_require_uppercase",
                "password_require_digit",
                "password_require_symbol",
                "password_reject_common",
                "password_reject_personal",
            ),
            nullable=frozenset({"password_max_repeated"}),
        ),
        Section(
            "access",
            "Registration and sign-in",
            numbers=(
                "invitation_expiry_days",
                "lockout_threshold",
                "lockout_minutes",
                "ip_failure_limit",
                "session_idle_minutes",
                "session_max_hours",
            ),
            checks=("email_verification_required",),
            roles="two_factor_required_roles",
        ),
    )
}
SMTP_SECURITY = (("none", "None"), ("starttls", "STARTTLS"), ("tls", "TLS"))


@dataclass
class SectionForm:
    """A section's form: what is stored, or what was typed, and the errors beside it."""

    section: Section
    values: dict[str, str]
    checked: dict[str, bool]
    roles: list[str] = field(default_factory=list)
    secret: str = ""
    remove_secret: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    # What the form showed when it was loaded (see render.shown_json).
    shown: dict[str, Any] | None = None

    @property
    def shown_json(self) -> str:
        return shown_json(
            self.shown or {"values": self.values, "checked": self.checked, "roles": self.roles}
        )

    def _shown(self, kind: str, name: str) -> Any:
        return (self.shown or {}).get(kind, {}).get(name) if self.shown else None

    def _left_alone(self, name: str) -> bool:
        """Whether the field still holds what the form showed (then it is not sent)."""
        if self.shown is None:
            return False
        if name in self.checked:
            return self._shown("checked", name) == self.checked[name]
        shown = self._shown("values", name)
        return isinstance(shown, str) and shown.strip() == self.values[name].strip()

    @classmethod
    def of(cls, section: Section, workspace: Workspace) -> SectionForm:
        def shown(name: str) -> str:
            value = getattr(workspace, name)
            return "" if value is None else str(value)

        return cls(
            section=section,
            values={name: shown(name) for name in (*section.texts, *section.numbers)},
            checked={name: bool(getattr(workspace, name)) for name in section.checks},
            roles=sorted(getattr(workspace, section.roles)) if section.roles else [],
        )

    @classmethod
    def parse(cls, section: Section, form: FormData) -> SectionForm:
        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        return cls(
            section=section,
            values={name: text(name) for name in (*section.texts, *section.numbers)},
            checked={name: text(name) == "on" for name in section.checks},
            roles=sorted(
                {r for r in form.getlist(section.roles) if isinstance(r, str)}
                if section.roles
                else ()
            ),
            secret=text(section.secret) if section.secret else "",
            remove_secret=bool(section.secret) and text(f"remove_{section.secret}") == "on",
            shown=read_shown(form),
        )

    def update(self, workspace: Workspace) -> SettingsUpdate | None:
        """The settings whose typed value differs from the stored one, or None when none
        does. Raises InvalidInput with every field's problem at once."""
        section = self.section
        changes: dict[str, Any] = {}
        errors: list[FieldError] = []
        for name in section.texts:
            if self._left_alone(name):
                continue
            typed = self.values[name].strip()
            text: str | None = typed if typed or name not in section.nullable else None
            if text != getattr(workspace, name):
                changes[name] = text
        for name in section.numbers:
            if self._left_alone(name):
                continue
            typed = self.values[name].strip()
            number: int | None = None
            if WHOLE_NUMBER.fullmatch(typed):
                number = int(typed)
            elif typed or name not in section.nullable:
                errors.append(FieldError(name, "not_a_number", "enter a whole number"))
                continue
            if number != getattr(workspace, name):
                changes[name] = number
        for name in section.checks:
            if self._left_alone(name):
                continue
            if self.checked[name] != getattr(workspace, name):
                changes[name] = self.checked[name]
        shown_roles = (self.shown or {}).get("roles")
        roles_left_alone = isinstance(shown_roles, list) and sorted(shown_roles) == self.roles
        if (
            section.roles
            and not roles_left_alone
            and self.roles != sorted(getattr(workspace, section.roles))
        ):
            changes[section.roles] = self.roles
        if section.secret:
            if self.secret:
                changes[section.secret] = self.secret
            elif self.remove_secret and getattr(workspace, section.secret) is not None:
                changes[section.secret] = None
        try:
            update = SettingsUpdate.model_validate(changes)
        except ValidationError as exc:
            errors += InvalidInput.from_pydantic(exc.errors(), drop_location=False).errors
        if errors:
            raise InvalidInput(errors)
        return update if changes else None

    def refused(self, exc: InvalidInput | Conflict) -> None:
        """Show a refusal beside its fields; one about no field of this form goes on top."""
        found = {exc.field or "form": exc.message} if isinstance(exc, Conflict) else {}
        if isinstance(exc, InvalidInput):
            found = field_errors(exc)
        self.errors = {}
        for name, message in found.items():
            if name in self.section.fields:
                self.errors.setdefault(name, message)
            else:
                self.errors.setdefault("form", f"{name}: {message}")
        self.secret = ""


@dataclass
class TestForm:
    """The "Send test email" form: the address typed, and the SMTP server's answer."""

    to: str = ""
    recipient: str = ""
    ok: bool | None = None
    answer: str = ""
    error: str = ""


async def _section_values(
    session: AsyncSession,
    viewer: Viewer,
    section: Section,
    *,
    form: SectionForm | None = None,
    test: TestForm | None = None,
) -> dict[str, Any]:
    workspace = await get_settings(session, viewer=viewer.actor)
    values: dict[str, Any] = {
        "viewer": viewer,
        "part": section,
        "form": form or SectionForm.of(section, workspace),
    }
    if section.name == "workspace":
        values["seats"] = (
            await get_seats(session, viewer=viewer.actor)
            if viewer.can(Permission.SEATS_READ)
            else None
        )
    elif section.name == "email":
        values["password_stored"] = workspace.smtp_password is not None
        values["configured"] = mail_configured(workspace)
        values["security_choices"] = SMTP_SECURITY
        values["test"] = test or TestForm()
    elif section.name == "password":
        values["rules"] = PasswordPolicy.of(workspace).check("")
    elif section.name == "access":
        values["role_names"] = [
            role.name for role in await role_queries.roles_only(session, viewer=viewer.actor)
        ]
    return values


def _render_section(values: dict[str, Any]) -> str:
    return render(f"_settings_{values['part'].name}.html", **values)


async def _whole_page(
    request: Request,
    viewer: Viewer,
    *,
    status: int = 200,
    replaced: dict[str, dict[str, Any]] | None = None,
) -> Response:
    """The page; `replaced` gives the values of a section being answered (kept input)."""
    sections: list[Markup] = []
    async with request.app.state.database.reader() as session:
        for section in SECTIONS.values():
            values = (replaced or {}).get(section.name) or await _section_values(
                session, viewer, section
            )
            sections.append(Markup(_render_section(values)))
    return page(
        "settings.html",
        status=status,
        viewer=viewer,
        section="settings",
        banner_mail=True,
        sections=sections,
        titles=[(s.name, s.title) for s in SECTIONS.values()],
    )


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request, viewer: ViewerDep) -> Response:
    return await _whole_page(request, viewer)


@router.post("/settings/email/test", response_class=HTMLResponse)
async def test_email(request: Request, viewer: ViewerDep) -> Response:
    """Send the test email now, with the saved SMTP settings, and show the server's answer
    in place (a refusal by the server is an answer, shown as such)."""
    typed = (await request.form()).get("to")
    test = TestForm(to=typed.strip() if isinstance(typed, str) else "")
    status = 200
    try:
        to = TestEmail.model_validate({"to": test.to or None}).to
    except ValidationError as exc:
        test.error = field_errors(
            InvalidInput.from_pydantic(exc.errors(), drop_location=False)
        ).get("to", "is not a valid address")
        status = 422
    else:
        try:
            result = await send_test_email(request.app.state.database, actor=viewer.actor, to=to)
        except Conflict as exc:  # nothing to send with: said where the answer would be
            test.ok, test.answer, status = False, exc.message, 409
        else:
            test.ok, test.answer = result.ok, result.answer
            test.recipient = to or viewer.user.email
    if not is_htmx(request):
        async with request.app.state.database.reader() as session:
            values = await _section_values(session, viewer, SECTIONS["email"], test=test)
        return await _whole_page(request, viewer, status=status, replaced={"email": values})
    return page("_settings_test_email.html", status=status, viewer=viewer, test=test)


@router.post("/settings/{name}", response_class=HTMLResponse)
async def save_section(request: Request, name: str, viewer: ViewerDep) -> Response:
    section = SECTIONS.get(name)
    if section is None:
        raise NotFound(f"there is no settings section {name!r}")
    database = request.app.state.database
    form = SectionForm.parse(section, await request.form())
    try:
        async with database.transaction() as session:
            workspace = await get_settings(session, viewer=viewer.actor)
            update = form.update(workspace)
            if update is not None:
                workspace = await update_settings(session, actor=viewer.actor, data=update)
            now_configured = mail_configured(workspace)
            workspace_name = workspace.name
    except (InvalidInput, Conflict) as exc:
        form.refused(exc)
        async with database.reader() as session:
            values = await _section_values(session, viewer, section, form=form)
        if not is_htmx(request):
            return await _whole_page(request, viewer, status=422, replaced={name: values})
        return page(f"_settings_{name}.html", status=422, **values)
    if not is_htmx(request):
        return redirect(request, f"{SETTINGS_PAGE}#settings-{name}")
    async with database.reader() as session:
        values = await _section_values(session, viewer, section)
    parts = [_render_section(values)]
    if update is not None and "name" in update.model_fields_set:
        parts.append(render("_settings_brand.html", name=workspace_name))
    if now_configured and not viewer.mail_configured:
        parts.append(render("_settings_banner_gone.html"))
    parts.append(toast(f"{section.title} settings saved." if update else "Nothing changed."))
    if viewer.mail_configured and not now_configured:
        parts.append(toast(MAIL_OFF_WARNING, kind="warning"))
    return fragments(*parts)
