"""The Settings page in Chromium: each section saved on its own, errors beside their fields,
SMTP against a real SMTP server (aiosmtpd, in this process) with the test email, the
write-only SMTP password, the password policy and the roles that must use 2FA."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from playwright.async_api import Page, expect

from tests.browser.conftest import Console, screenshot
from tests.processes import free_port

SMTP_SECRET = "smtp-Secret-Q7vx91"


@dataclass
class Inbox:
    received: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        return "250 2.0.0 OK queued as 4711"


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer(inbox, port)
    controller.stop()


async def open_settings(console: Console) -> Page:
    page = await console.new_page()
    await console.sign_in(page)
    await page.goto("/settings")
    await expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    return page


async def test_workspace_name_and_seat_limit(console: Console) -> None:
    page = await open_settings(console)
    await expect(page.get_by_role("link", name="Settings", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    await screenshot(page, "settings-page", full_page=True)
    section = page.locator("#settings-workspace")
    await expect(section.locator("#seat-use")).to_contain_text("1 seat used · no limit")

    await section.get_by_label("Workspace name").fill("Acme People")
    await section.get_by_label("Seat limit").fill("50")
    await section.get_by_role("button", name="Save workspace").click()
    await expect(page.locator("#toasts")).to_contain_text("Workspace settings saved.")
    await expect(page.locator(".topbar .brand")).to_have_text("Acme People")
    await expect(section.locator("#seat-use")).to_contain_text("1 of 50 seats used")
    await page.reload()
    await expect(page.locator(".topbar .brand")).to_have_text("Acme People")
    await expect(page.locator("#setting-seat_limit")).to_have_value("50")
    settings = console.api("GET", "/settings").json()
    assert (settings["name"], settings["seat_limit"]) == ("Acme People", 50)

    # A refused value: the reason beside the field, what was typed kept, nothing changed.
    section = page.locator("#settings-workspace")
    await section.get_by_label("Workspace name").fill("Not saved")
    await section.get_by_label("Seat limit").fill("-1")
    await section.get_by_role("button", name="Save workspace").click()
    await expect(section.locator("#error-seat_limit")).to_contain_text("greater than or equal to 0")
    await expect(section.get_by_label("Seat limit")).to_have_attribute("aria-invalid", "true")
    await expect(section.get_by_label("Seat limit")).to_have_value("-1")
    await expect(section.get_by_label("Workspace name")).to_have_value("Not saved")
    await expect(section.locator(".form-error").first).to_contain_text("Nothing was saved")
    await expect(page.locator(".topbar .brand")).to_have_text("Acme People")
    await screenshot(page, "settings-workspace-error")
    settings = console.api("GET", "/settings").json()
    assert (settings["name"], settings["seat_limit"]) == ("Acme People", 50)

    # An invalid from address, in another section: only that section answers.
    mail = page.locator("#settings-email")
    await mail.get_by_label("From address").fill("not-an-address")
    await mail.get_by_role("button", name="Save email settings").click()
    await expect(mail.locator("#error-mail_from_address")).not_to_be_empty()
    await expect(section.locator("#error-seat_limit")).to_contain_text("greater than or equal")
    assert console.api("GET", "/settings").json()["mail_from_address"] is None


async def test_smtp_settings_and_the_test_email(console: Console, smtp_server: SmtpServer) -> None:
    page = await open_settings(console)
    await expect(page.locator("#mail-banner")).to_be_visible()
    mail = page.locator("#settings-email")
    await expect(mail.locator("#mail-state")).to_contain_text("No SMTP server")
    await mail.get_by_label("SMTP host").fill("127.0.0.1")
    await mail.get_by_label("Port").fill(str(smtp_server.port))
    await mail.get_by_label("Security").select_option("none")
    await mail.get_by_label("Username").fill("desk")
    await mail.get_by_label("Password").fill(SMTP_SECRET)
    await mail.get_by_label("From address").fill("desk@acme.example")
    await mail.get_by_label("From name").fill("Acme Desk")
    await mail.get_by_role("button", name="Save email settings").click()
    await expect(page.locator("#toasts")).to_contain_text("Email settings saved.")
    await expect(page.locator("#mail-banner")).to_have_count(0)
    await expect(mail.locator("#mail-state")).to_contain_text("delivered through")
    await expect(mail.locator("#hint-smtp_password")).to_contain_text("A password is stored")
    await expect(mail.locator("#setting-smtp_password")).to_have_value("")
    assert SMTP_SECRET not in await page.content()
    await page.reload()
    await expect(page.locator("#mail-banner")).to_have_count(0)
    assert SMTP_SECRET not in await page.content()
    settings = console.api("GET", "/settings").json()
    assert settings["smtp_password_set"] is True and settings["email_configured"] is True
    assert settings["smtp_port"] == smtp_server.port and settings["smtp_security"] == "none"

    # The test server offers no AUTH: the test email shows the client's error text in place.
    mail = page.locator("#settings-email")
    await mail.get_by_role("button", name="Send test email").click()
    answer = mail.locator("#test-answer")
    await expect(answer).to_contain_text("Not sent to olive@example.com.")
    await expect(answer).to_contain_text("AUTH")
    assert smtp_server.inbox.received == []

    # No username, the stored password removed: it goes out, and the server's answer shows.
    await mail.get_by_label("Username").fill("")
    await mail.get_by_label("Remove the stored password").check()
    await mail.get_by_role("button", name="Save email settings").click()
    await expect(mail.locator("#hint-smtp_password")).to_contain_text("No password is stored")
    await mail.get_by_role("button", name="Send test email").click()
    await expect(answer).to_contain_text("Sent to olive@example.com: the server accepted it.")
    await expect(answer).to_contain_text("4711")
    await screenshot(page, "settings-test-email")
    [message] = smtp_server.inbox.received
    assert message["To"] == "olive@example.com"
    assert "Acme Desk" in str(message["From"]) and "desk@acme.example" in str(message["From"])

    await mail.locator("#test-to").fill("someone@elsewhere.example")
    await mail.get_by_role("button", name="Send test email").click()
    await expect(answer).to_contain_text("Sent to someone@elsewhere.example")
    assert len(smtp_server.inbox.received) == 2
    assert smtp_server.inbox.received[1]["To"] == "someone@elsewhere.example"
    settings = console.api("GET", "/settings").json()
    assert settings["smtp_password_set"] is False and settings["smtp_username"] is None


async def test_password_policy(console: Console) -> None:
    page = await open_settings(console)
    policy = page.locator("#settings-password")
    await expect(policy.locator("#policy-preview")).to_contain_text("at least 12 characters")
    await policy.get_by_label("Minimum length").fill("20")
    await policy.get_by_label("Same character in a row").fill("3")
    await policy.get_by_label("A digit").check()
    await policy.get_by_role("button", name="Save password policy").click()
    await expect(page.locator("#toasts")).to_contain_text("Password policy settings saved.")
    preview = policy.locator("#policy-preview")
    await expect(preview).to_contain_text("at least 20 characters")
    await expect(preview).to_contain_text("a digit")
    await expect(preview).to_contain_text("no character more than 3 times in a row")
    await screenshot(page, "settings-password-policy")
    public = console.api("GET", "/password-policy").json()
    assert (public["min_length"], public["max_repeated"], public["require_digit"]) == (20, 3, True)

    await policy.get_by_label("Minimum length").fill("7")
    await policy.get_by_role("button", name="Save password policy").click()
    await expect(policy.locator("#error-password_min_length")).not_to_be_empty()
    assert console.api("GET", "/password-policy").json()["min_length"] == 20


async def test_registration_and_sign_in(console: Console) -> None:
    page = await open_settings(console)
    access = page.locator("#settings-access")
    for role in ("guest", "user-manager"):
        await access.get_by_role("checkbox", name=role, exact=True).check()
    await access.get_by_label("Users must verify their email address").check()
    await access.get_by_label("Invitations expire after").fill("14")
    await access.get_by_label("Lock an account after").fill("5")
    await access.get_by_role("button", name="Save registration and sign-in").click()
    await expect(page.locator("#toasts")).to_contain_text("Registration and sign-in settings saved")
    settings = console.api("GET", "/settings").json()
    assert settings["two_factor_required_roles"] == ["guest", "user-manager"]
    assert settings["email_verification_required"] is True
    assert (settings["invitation_expiry_days"], settings["lockout_threshold"]) == (14, 5)
    await page.reload()
    access = page.locator("#settings-access")
    await expect(access.get_by_role("checkbox", name="user-manager", exact=True)).to_be_checked()
    await expect(access.get_by_role("checkbox", name="admin", exact=True)).not_to_be_checked()
    await access.get_by_label("Sign out after").fill("1")
    await access.get_by_role("button", name="Save registration and sign-in").click()
    await expect(access.locator("#error-session_idle_minutes")).not_to_be_empty()
    await access.scroll_into_view_if_needed()
    await screenshot(page, "settings-access-error")
    assert console.api("GET", "/settings").json()["session_idle_minutes"] == 480


async def test_a_narrow_window(console: Console) -> None:
    page = await console.new_page(width=420, height=900)
    await console.sign_in(page)
    await page.goto("/settings")
    await expect(page.locator("#settings-email")).to_be_visible()
    await screenshot(page, "settings-narrow", full_page=True)
    assert re.search(r"/settings$", page.url)
