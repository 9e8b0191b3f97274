"""Turn a queued email (template name, context, opened secrets) into a subject, a plain text
and an HTML body, and those into an RFC 5322 message.

Each template is three files in templates/: `<name>.subject.txt`, `<name>.txt` and
`<name>.html`; the text and HTML bodies extend `base.txt` and `base.html`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import cache
from typing import Any

import jinja2

SUBJECT_MAX_LENGTH = 200
_SUBJECT_SUFFIX = ".subject.txt"
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")


class MailTemplateError(Exception):
    """A queued email that can never be rendered as it stands: retrying will not help."""


class UnknownTemplate(MailTemplateError, LookupError):
    def __init__(self, template: str) -> None:
        super().__init__(f"no email template named {template!r}")
        self.template = template


class MissingContext(MailTemplateError):
    """The context or secrets lack a value the template needs."""

    def __init__(self, template: str, detail: str) -> None:
        super().__init__(f"email template {template!r} cannot be rendered: {detail}")
        self.template = template


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def _when(value: Any) -> str:
    """An ISO 8601 string or a datetime, as people read it: "4 March 2025, 12:30 UTC"."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined: names the missing key
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return str(value)
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


def _listing(value: Any) -> str:
    """A list of names as "a, b and c"."""
    if isinstance(value, str | jinja2.Undefined):
        return str(value)
    names = [str(item) for item in value]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("userdesk.mail", "templates"),
    autoescape=jinja2.select_autoescape(
        enabled_extensions=("html",), default_for_string=False, default=False
    ),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.filters["when"] = _when
_ENV.filters["listing"] = _listing


@cache
def template_names() -> frozenset[str]:
    """The names `render` accepts."""
    return frozenset(
        name.removesuffix(_SUBJECT_SUFFIX)
        for name in _ENV.list_templates()
        if name.endswith(_SUBJECT_SUFFIX)
    )


def _one_line(value: str) -> str:
    """`value` with control characters and line breaks as spaces, runs of space collapsed."""
    spaced = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in value)
    return " ".join(spaced.split())


def _subject(value: str) -> str:
    line = _one_line(value)
    if len(line) <= SUBJECT_MAX_LENGTH:
        return line
    return line[: SUBJECT_MAX_LENGTH - 1].rstrip() + "…"


def _one_line_values(value: Any) -> Any:
    """Context values are names, addresses and dates, never paragraphs: a line break in one
    (a display name crafted to fake a header or a paragraph) becomes a space."""
    if isinstance(value, str):
        return _one_line(value)
    if isinstance(value, Mapping):
        return {key: _one_line_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_one_line_values(item) for item in value]
    return value


def render(
    template: str,
    *,
    context: Mapping[str, Any],
    secrets: Mapping[str, str],
    workspace_name: str,
    public_url: str,
) -> RenderedEmail:
    """Render a queued email. `secrets` are the opened values of the row's sealed secrets
    (`actions.outbox.open_secrets`); the templates use them and the context keys by name."""
    if template not in template_names():
        raise UnknownTemplate(template)
    values: dict[str, Any] = {
        **_one_line_values(dict(context)),
        **secrets,
        "workspace_name": _one_line(workspace_name),
        "public_url": public_url.rstrip("/"),
    }
    try:
        subject = _subject(_ENV.get_template(template + _SUBJECT_SUFFIX).render(values))
        values["subject"] = subject
        text = _ENV.get_template(f"{template}.txt").render(values)
        html = _ENV.get_template(f"{template}.html").render(values)
    except jinja2.UndefinedError as exc:
        raise MissingContext(template, exc.message or "a value is missing") from exc
    return RenderedEmail(subject=subject, text=text, html=html)


def _header_address(address: str, display_name: str | None = None) -> Address:
    """An address for a header; a non-ASCII domain is written in its IDNA form, which every
    server accepts. Raises ValueError for what no header can carry."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        raise ValueError(f"not an email address: {address!r}")
    return Address(
        display_name=_one_line(display_name or ""),
        addr_spec=f"{local}@{_ascii_host(domain)}",
    )


def _ascii_host(domain: str) -> str:
    host = domain.strip().lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"not a valid domain: {domain!r}") from exc
    if not _HOST.fullmatch(host):
        raise ValueError(f"not a valid domain: {domain!r}")
    return host


def build_message(
    rendered: RenderedEmail,
    *,
    to: str,
    from_address: str,
    from_name: str | None,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """A multipart/alternative message (text, then HTML). Names and the subject are encoded
    by the email package, so no value can add a header of its own."""
    message = EmailMessage(policy=SMTP)
    message["From"] = _header_address(from_address, from_name)
    message["To"] = _header_address(to)
    message["Subject"] = _subject(rendered.subject)
    message["Date"] = format_datetime(date if date.tzinfo else date.replace(tzinfo=UTC))
    message["Message-ID"] = message_id
    # RFC 3834: automatic; vacation responders and the like should not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def message_id_for(row_id: int, domain: str, *, salt: str = "") -> str:
    """The Message-ID of the email in outbox row `row_id`: the same on every attempt, so a
    receiver recognises a resend. `salt`, something that differs between installations,
    keeps a rebuilt database's row 1 from reusing an earlier installation's ID."""
    host = _ascii_host(domain)
    digest = hashlib.sha256(f"{salt}\0{row_id}\0{host}".encode()).hexdigest()[:16]
    return f"<userdesk.{row_id}.{digest}@{host}>"
