"""The Mail page and the pages its emails lead to, in Chromium, end to end: an invitation read
in the mail catcher and accepted by someone else, a forgotten password reset through its
email, the welcome email's sign-in, and the "Email is not configured" banner."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Page, expect

from tests.browser.conftest import Console, screenshot
from tests.processes import OWNER_PASSWORD, free_port

PASSWORD = "a long and unguessable passphrase"
BANNER = "Email is not configured"


def _create_user(console: Console, username: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": username.title(),
        "username": username,
        "email": f"{username}@example.com",
        "roles": ["user"],
        **fields,
    }
    created = console.api("POST", "/users", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


async def _expect_status(console: Console, user_id: str, status: str) -> None:
    answer = console.api("GET", f"/users/{user_id}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == status


async def _signed_in_as(page: Page) -> str:
    """The username of the browser's session, as the API sees its cookie."""
    me = await page.request.get("/api/v1/me")
    assert me.status == 200, await me.text()
    return str((await me.json())["username"])


async def _reload_until_status(page: Page, status: str, *, seconds: float = 15) -> None:
    """Wait for the worker to move the open email to `status` (the page does not poll)."""
    shown = ""
    for _ in range(int(seconds * 2)):
        shown = await page.locator("#mail-status").inner_text()
        if shown == status:
            return
        await page.wait_for_timeout(500)
        await page.reload()
    raise AssertionError(f"the email stayed {shown!r}, not {status!r}")


async def test_invited_person_joins_through_the_link_in_the_mail_catcher(
    console: Console,
) -> None:
    workspace = console.api("GET", "/settings").json()["name"]
    invited = console.api(
        "POST", "/invitations", json={"emails": ["new@example.com"], "roles": ["user"]}
    )
    assert invited.status_code == 200, invited.text

    owner = await console.new_page()
    await console.sign_in(owner)
    nav = owner.get_by_role("navigation", name="Console")
    await nav.get_by_role("link", name="Mail", exact=True).click()
    await expect(owner).to_have_url(re.compile(r"/mail$"))
    await expect(owner.get_by_role("heading", name="Mail", exact=True)).to_be_visible()
    await expect(owner.locator("#mail-panel")).to_contain_text("Open an email to read it.")
    subject = f"Welcome to {workspace}"
    item = owner.locator(".mail-list a", has_text=subject)
    await expect(item).to_contain_text("To new@example.com ·")
    await item.click()
    # htmx loads it beside the list and the address bar follows.
    await expect(owner).to_have_url(re.compile(r"/mail\?open=\d+$"))
    panel = owner.locator("#mail-panel")
    await expect(panel.get_by_role("heading", name=subject)).to_be_visible()
    await expect(item).to_have_attribute("aria-current", "true")
    await expect(panel).to_contain_text("new@example.com")
    join = panel.locator(".mail-body a", has_text="/join/")
    await expect(join).to_have_count(1)
    link = await join.get_attribute("href")
    assert link is not None and link.startswith(f"{console.url}/join/")
    assert await join.inner_text() == link
    await expect(panel.locator(".mail-body")).to_contain_text("invited you to join")
    # Captured by the in-process worker (within seconds) while no SMTP server is set.
    await _reload_until_status(owner, "captured")
    await screenshot(owner, "mail")

    # The HTML version stays out of the page: a sandboxed frame of its own.
    await panel.get_by_role("link", name="HTML", exact=True).click()
    await expect(owner).to_have_url(re.compile(r"/mail\?open=\d+&as=html$"))
    frame = owner.frame_locator("iframe.mail-html")
    await expect(frame.get_by_text("invited you to join")).to_be_visible()
    assert await owner.locator("iframe.mail-html").get_attribute("sandbox") == ""
    await screenshot(owner, "mail-html")
    await panel.get_by_role("link", name="Text", exact=True).click()
    await expect(panel.locator(".mail-body")).to_be_visible()

    # A reload (or a shared link) shows the same email, without htmx.
    await owner.reload()
    await expect(owner.locator("#mail-panel").get_by_role("heading", name=subject)).to_be_visible()

    newcomer = await console.new_page()
    await newcomer.goto(link)
    await expect(newcomer.get_by_role("heading", name=f"Join {workspace}")).to_be_visible()
    await expect(newcomer.get_by_label("Email address")).to_have_value("new@example.com")
    await newcomer.get_by_label("Name", exact=True).fill("Nora New")
    await newcomer.get_by_label("Username").fill("nora")
    await newcomer.get_by_label("Password").fill(PASSWORD)
    await screenshot(newcomer, "join")
    await newcomer.get_by_role("button", name="Create account").click()
    # Joined and signed in: "/" sends a plain user on to their account.
    await expect(newcomer).to_have_url(re.compile(r"/account$"))
    assert await _signed_in_as(newcomer) == "nora"

    # The link is spent: opened again, it says so.
    again = await console.new_page()
    answer = await again.goto(link)
    assert answer is not None and answer.status == 410
    await expect(
        again.get_by_role("heading", name="This invitation cannot be used")
    ).to_be_visible()


async def test_forgotten_password_is_reset_through_the_emailed_link(console: Console) -> None:
    _create_user(console, "fern", password=PASSWORD)
    page = await console.new_page()
    await page.goto("/login")
    await page.get_by_role("link", name="Forgot your password?").click()
    await expect(page).to_have_url(re.compile(r"/forgot-password$"))
    await page.get_by_label("Username or email").fill("fern")
    await page.get_by_role("button", name="Email me a link").click()
    await expect(page.get_by_role("status")).to_contain_text("The link works once")

    mail = console.latest_mail("fern@example.com")
    assert "password" in mail["subject"].lower(), mail["subject"]
    link = console.link_in(mail)
    assert "/reset-password#" in link, link
    await page.goto(link)
    await expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    await expect(page.locator("#who")).to_contain_text("For fern at")
    # The token leaves the address bar as soon as the page has read it.
    await expect(page).to_have_url(re.compile(r"/reset-password$"))
    new_password = "another long passphrase, newly chosen"
    await page.get_by_label("New password").fill(new_password)
    await screenshot(page, "reset-password")
    await page.get_by_role("button", name="Set password").click()
    await expect(page.get_by_text("Your password was changed")).to_be_visible()

    old = await console.new_page()
    await old.goto("/login")
    await old.get_by_label("Username or email").fill("fern")
    await old.get_by_label("Password").fill(PASSWORD)
    await old.get_by_role("button", name="Sign in").click()
    await expect(old.get_by_role("alert")).to_have_text("Wrong username, email or password.")
    await expect(old).to_have_url(re.compile(r"/login"))

    await console.sign_in(page, "fern", new_password)
    await expect(page).to_have_url(re.compile(r"/account$"))
    assert await _signed_in_as(page) == "fern"


async def test_welcome_email_leads_to_sign_in_and_activates(console: Console) -> None:
    user = _create_user(console, "wanda", password=PASSWORD, send_welcome_email=True)
    await _expect_status(console, user["id"], "pending")
    mail = console.latest_mail("wanda@example.com")
    assert "account is ready" in mail["subject"], mail["subject"]
    links = re.findall(r"https?://\S+", mail["text"])
    assert f"{console.url}/login" in links, mail["text"]

    page = await console.new_page()
    answer = await page.goto(f"{console.url}/login")
    assert answer is not None and answer.status == 200
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await page.get_by_label("Username or email").fill("wanda")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/account$"))
    await _expect_status(console, user["id"], "active")


async def test_banner_until_smtp_is_configured_and_retry_of_a_kept_email(
    console: Console,
) -> None:
    _create_user(console, "wes", send_welcome_email=True)
    owner = await console.new_page()
    await console.sign_in(owner, "olive", OWNER_PASSWORD)
    await owner.goto("/users")
    await expect(owner.locator("#mail-banner")).to_contain_text(BANNER)
    await owner.goto("/mail")
    await expect(owner.locator("#mail-banner")).to_contain_text(BANNER)
    item = owner.locator(".mail-list a", has_text="To wes@example.com")
    await item.click()
    panel = owner.locator("#mail-panel")
    await _reload_until_status(owner, "captured")

    # Nothing listens on this port: a retried email fails at once (one attempt allowed).
    changed = console.api(
        "PATCH",
        "/settings",
        json={"smtp_host": "127.0.0.1", "smtp_port": free_port(), "mail_max_attempts": 1},
    )
    assert changed.status_code == 200, changed.text
    for path in ("/users", "/mail"):
        await owner.goto(path)
        await expect(owner.locator("main")).to_be_visible()
        await expect(owner.get_by_text(BANNER)).to_have_count(0)

    await owner.locator(".mail-list a", has_text="To wes@example.com").click()
    await panel.get_by_role("button", name="Retry").click()
    await expect(owner.locator(".toast")).to_contain_text("queued again")
    await expect(panel.locator("#mail-status")).to_have_text("queued")
    # The worker tries it within seconds; a reload shows the outcome and the error.
    await _reload_until_status(owner, "failed")
    await expect(panel.locator(".mail-error")).not_to_be_empty()
    await expect(panel.get_by_role("button", name="Retry")).to_be_visible()
    await screenshot(owner, "mail-failed")


async def test_unverified_address_gets_a_new_link_and_verifies(console: Console) -> None:
    """With verified addresses required, signing in unverified says so and offers a new
    link; the emailed link verifies the address, and signing in then works."""
    assert console.api("PATCH", "/settings", json={"email_verification_required": True}).is_success
    _create_user(console, "vera", password=PASSWORD)
    page = await console.new_page()
    await page.goto("/login")
    await page.get_by_label("Username or email").fill("vera")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Verify your email address first")
    await page.get_by_role("link", name="Email me a new verification link").click()
    await page.get_by_label("Email address").fill("not an address")
    await page.get_by_role("button", name="Email me a link").click()
    await expect(page.locator("#email-error")).not_to_be_empty()
    await page.get_by_label("Email address").fill("vera@example.com")
    await page.get_by_role("button", name="Email me a link").click()
    await expect(page.get_by_role("status")).to_contain_text("awaiting verification")

    link = console.link_in(console.latest_mail("vera@example.com"))
    assert "/verify-email#token=" in link
    await page.goto(link)
    await expect(page.locator("#status")).to_contain_text("vera@example.com is verified")
    await screenshot(page, "verify-email")
    await console.sign_in(page, "vera", PASSWORD)
    await expect(page).to_have_url(re.compile(r"/account$"))
