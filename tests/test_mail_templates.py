"""Email templates: every queued email renders, values cannot inject markup or headers, and
the message built from it is a well-formed multipart/alternative email."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from typing import Any

import pytest

from userdesk.mail import (
    MissingContext,
    RenderedEmail,
    UnknownTemplate,
    build_message,
    message_id_for,
    render,
    template_names,
)
from userdesk.mail.render import SUBJECT_MAX_LENGTH

PUBLIC_URL = "https://desk.example.com"
USER = {
    "user_id": "0b7e6a52-6d0c-4f0e-9d7a-1f3c2b4a5d6e",
    "name": "Ada Lovelace",
    "username": "ada",
}
EXPIRES = "2025-03-04T12:30:00+00:00"
HOSTILE = "Eve <script>alert(1)</script>\r\nBcc: victim@example.com"

# Every template, with a realistic context and the secrets its row carries.
CASES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "welcome": (USER, {}),
    "random_password": (USER, {"password": "correct-horse-battery-staple"}),
    "password_reset": (
        {**USER, "email": "ada@example.com", "expires_at": EXPIRES},
        {"link": f"{PUBLIC_URL}/reset-password#token=r3s3t"},
    ),
    "email_verification": (
        {**USER, "email": "ada@example.com", "expires_at": EXPIRES},
        {"link": f"{PUBLIC_URL}/verify-email#token=v3r1fy"},
    ),
    "email_change": (
        {**USER, "email": "ada@new.example.com", "expires_at": EXPIRES},
        {"link": f"{PUBLIC_URL}/verify-email#token=ch4ng3"},
    ),
    "email_changed": (
        {**USER, "old_email": "ada@example.com", "new_email": "ada@new.example.com"},
        {},
    ),
    "password_changed": ({**USER, "by": "an administrator"}, {}),
    "two_factor_reset": (USER, {}),
    "two_factor_changed": ({**USER, "change": "recovery_codes_regenerated"}, {}),
    "account_locked": ({**USER, "failures": 10, "locked_until": EXPIRES}, {}),
    "e2e_keys_reset": (USER, {}),
    "invitation": (
        {
            "email": "bob@example.com",
            "roles": ["user", "moderator"],
            "invited_by": "Ada Lovelace",
            "expires_at": EXPIRES,
        },
        {"link": f"{PUBLIC_URL}/join#token=1nv1t3"},
    ),
    "test": ({"requested_by": "Ada Lovelace"}, {}),
}
SECURITY_NOTICES = {
    "password_changed",
    "two_factor_reset",
    "two_factor_changed",
    "account_locked",
    "e2e_keys_reset",
    "email_changed",
}


def _render(template: str, **overrides: Any) -> RenderedEmail:
    context, secrets = CASES[template]
    return render(
        template,
        context={**context, **overrides},
        secrets=secrets,
        workspace_name="Acme",
        public_url=PUBLIC_URL,
    )


def _flat(text: str) -> str:
    """The text with its line wrapping undone, to look for a phrase."""
    return " ".join(text.split())


def _message(rendered: RenderedEmail, **overrides: Any) -> email.message.EmailMessage:
    arguments: dict[str, Any] = {
        "to": "ada@example.com",
        "from_address": "desk@example.com",
        "from_name": "Acme",
        "message_id": message_id_for(42, "example.com"),
        "date": datetime(2025, 3, 4, 12, 0, tzinfo=UTC),
        **overrides,
    }
    built = build_message(rendered, **arguments)
    parsed = email.message_from_bytes(built.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def test_every_template_in_the_package_has_a_case_here() -> None:
    assert template_names() == set(CASES)


@pytest.mark.parametrize("template", sorted(CASES))
def test_every_template_renders_subject_text_and_html(template: str) -> None:
    rendered = _render(template)
    assert rendered.subject and "\n" not in rendered.subject
    assert "Acme" in rendered.subject and "Acme" in rendered.text and "Acme" in rendered.html
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>")
    assert "<link" not in rendered.html and "src=" not in rendered.html  # no external assets
    assert "{{" not in rendered.text + rendered.html
    assert all(len(line) <= 76 or " " not in line for line in rendered.text.splitlines())
    context, secrets = CASES[template]
    for secret in secrets.values():
        assert secret in rendered.text and secret in rendered.html
    if "link" in secrets:
        assert f"\n{secrets['link']}\n" in rendered.text  # on its own line
        assert f'href="{secrets["link"]}"' in rendered.html
    if "username" in context:
        assert context["username"] in rendered.text
    if template in SECURITY_NOTICES:
        assert "administrator" in rendered.text and "administrator" in rendered.html


def test_invitation_welcomes_to_the_workspace_with_a_join_button() -> None:
    rendered = _render("invitation")
    assert rendered.subject == "Welcome to Acme"
    assert ">Join</a>" in rendered.html
    assert "Ada Lovelace has invited you" in _flat(rendered.text)
    assert "You will join as user and moderator." in _flat(rendered.text)
    assert "expires on 4 March 2025, 12:30 UTC" in _flat(rendered.text)


def test_invitation_without_inviter_or_roles() -> None:
    rendered = _render("invitation", invited_by=None, roles=[])
    assert "You have been invited to join Acme." in _flat(rendered.text)
    assert "join as" not in rendered.text


def test_welcome_links_to_sign_in_and_explains_pending() -> None:
    rendered = _render("welcome")
    assert f"\n{PUBLIC_URL}/login\n" in rendered.text
    assert f'href="{PUBLIC_URL}/login"' in rendered.html and ">Sign in</a>" in rendered.html
    assert "pending until you sign in for the first time" in _flat(rendered.text)


@pytest.mark.parametrize(
    ("template", "label"),
    [
        ("password_reset", "Reset your password"),
        ("email_verification", "Verify your address"),
        ("email_change", "Verify your address"),
    ],
)
def test_action_links_are_buttons(template: str, label: str) -> None:
    assert f">{label}</a>" in _render(template).html


@pytest.mark.parametrize("change", ["enabled", "disabled", "recovery_codes_regenerated"])
def test_two_factor_changed_says_what_changed(change: str) -> None:
    rendered = _render("two_factor_changed", change=change)
    expected = {
        "enabled": "turned on",
        "disabled": "turned off",
        "recovery_codes_regenerated": "new recovery codes",
    }[change]
    assert expected in _flat(rendered.text) and expected in rendered.html
    assert "If this wasn't you" in rendered.text


@pytest.mark.parametrize("by", ["you", "an administrator", "a reset link"])
def test_password_changed_says_how(by: str) -> None:
    rendered = _render("password_changed", by=by)
    assert "If this wasn't you" in rendered.text
    assert "password" in rendered.subject


def test_values_are_escaped_in_html_and_kept_on_one_line() -> None:
    rendered = _render("password_changed", name=HOSTILE, username=HOSTILE, by=HOSTILE)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "\r" not in rendered.text and "\nBcc:" not in rendered.text
    invited = _render("invitation", invited_by=HOSTILE)
    assert "<script>" not in invited.html
    changed = _render("two_factor_changed", username=HOSTILE)
    assert "<script>" not in changed.html


def test_a_hostile_workspace_name_stays_on_the_subject_line() -> None:
    rendered = render(
        "invitation",
        context=CASES["invitation"][0],
        secrets=CASES["invitation"][1],
        workspace_name=HOSTILE,
        public_url=PUBLIC_URL,
    )
    assert rendered.subject == ("Welcome to Eve <script>alert(1)</script> Bcc: victim@example.com")
    assert "<script>" not in rendered.html


def test_control_characters_collapse_and_the_subject_is_capped() -> None:
    rendered = render(
        "test",
        context={"requested_by": "x"},
        secrets={},
        workspace_name="A\x00c\x1bme\u2028" + "x" * 500,
        public_url=PUBLIC_URL,
    )
    assert len(rendered.subject) == SUBJECT_MAX_LENGTH
    assert rendered.subject.startswith("Test email from A c me x")
    assert rendered.subject.endswith("…")
    assert all(ch.isprintable() for ch in rendered.subject)


def test_no_header_injection_through_the_sender_name_or_subject() -> None:
    rendered = RenderedEmail(subject=HOSTILE, text="hello\n", html="<p>hello</p>")
    parsed = _message(rendered, from_name=HOSTILE)
    assert "Bcc" not in parsed
    assert parsed.get_all("Subject") is not None and len(parsed.get_all("Subject") or []) == 1
    assert len(parsed.get_all("From") or []) == 1
    assert parsed["Subject"] == "Eve <script>alert(1)</script> Bcc: victim@example.com"
    sender = parsed["From"].addresses
    assert len(sender) == 1
    assert sender[0].addr_spec == "desk@example.com"
    assert sender[0].display_name == "Eve <script>alert(1)</script> Bcc: victim@example.com"


def test_a_quoted_sender_name_survives_the_round_trip() -> None:
    parsed = _message(_render("test"), from_name='The "Acme" Desk, Inc.')
    assert parsed["From"].addresses[0].display_name == 'The "Acme" Desk, Inc.'


def test_message_is_multipart_alternative_with_text_and_html() -> None:
    rendered = _render("password_reset")
    parsed = _message(rendered, from_name="Äcme Desk")
    assert parsed.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in parsed.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and html is not None
    # SMTP lines end in CRLF on the wire
    assert plain.get_content().replace("\r\n", "\n") == rendered.text
    assert html.get_content().replace("\r\n", "\n") == rendered.html
    assert parsed["To"] == "ada@example.com"
    assert parsed["From"].addresses[0].display_name == "Äcme Desk"
    assert parsed["Subject"] == "Reset your Acme password"
    assert parsed["Message-ID"] == message_id_for(42, "example.com")
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Date"].datetime == datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


def test_an_international_domain_is_written_in_its_ascii_form() -> None:
    parsed = _message(_render("test"), to="bob@exämple.com")
    assert parsed["To"] == "bob@xn--exmple-cua.com"


def test_an_unusable_address_is_refused() -> None:
    with pytest.raises(ValueError):
        build_message(
            _render("test"),
            to="ada@example.com\r\nBcc: victim@example.com",
            from_address="desk@example.com",
            from_name=None,
            message_id=message_id_for(1, "example.com"),
            date=datetime(2025, 3, 4, tzinfo=UTC),
        )


def test_a_missing_context_key_raises() -> None:
    context = dict(CASES["password_reset"][0])
    del context["expires_at"]
    with pytest.raises(MissingContext, match="expires_at"):
        render(
            "password_reset",
            context=context,
            secrets=CASES["password_reset"][1],
            workspace_name="Acme",
            public_url=PUBLIC_URL,
        )


def test_a_missing_secret_raises() -> None:
    with pytest.raises(MissingContext, match="link"):
        render(
            "invitation",
            context=CASES["invitation"][0],
            secrets={},
            workspace_name="Acme",
            public_url=PUBLIC_URL,
        )


def test_an_unknown_two_factor_change_raises() -> None:
    with pytest.raises(MissingContext):
        _render("two_factor_changed", change="exploded")


@pytest.mark.parametrize("name", ["no_such_template", "base", "macros", "../welcome"])
def test_an_unknown_template_raises(name: str) -> None:
    with pytest.raises(UnknownTemplate, match="no email template"):
        render(name, context=USER, secrets={}, workspace_name="Acme", public_url=PUBLIC_URL)


def test_message_id_is_stable_per_row() -> None:
    first = message_id_for(42, "example.com")
    assert first == message_id_for(42, "Example.com")
    assert first.startswith("<userdesk.42.") and first.endswith("@example.com>")
    assert first != message_id_for(43, "example.com")
    assert first != message_id_for(42, "example.com", salt="another installation")
    with pytest.raises(ValueError):
        message_id_for(42, "example.com>\r\nBcc: x@example.com")
