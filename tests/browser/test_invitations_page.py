"""The Invitations page and the New user form in Chromium: inviting several addresses at
once, resending and revoking, invite links (shown once, copied, used, revoked), the seat
limit, and creating a user by hand."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Page, expect

from tests.browser.conftest import Console, screenshot


def add_member(console: Console, username: str, email: str) -> None:
    created = console.api(
        "POST", "/users", json={"name": username.title(), "username": username, "email": email}
    )
    assert created.status_code == 201, created.text


async def invite(page: Page, addresses: str, role: str = "user") -> None:
    await page.get_by_label("Email addresses").fill(addresses)
    await page.locator("#invite-role").select_option(role)
    await page.get_by_role("button", name="Send invitations").click()


async def test_invite_several_then_resend_and_revoke(console: Console) -> None:
    add_member(console, "alice", "alice@example.com")
    page = await console.new_page()
    await console.sign_in(page)
    await page.goto("/invitations")
    await expect(page.get_by_role("heading", name="Invitations", exact=True)).to_be_visible()
    await expect(page.locator("#invitation-list .empty")).to_contain_text("No invitations")

    await invite(page, "ana@example.com, not-an-address;\nALICE@example.com", role="guest")
    results = page.locator(".invite-results li")
    await expect(results).to_have_count(3)
    await expect(results.nth(0)).to_contain_text("Invited")
    await expect(results.nth(0)).to_contain_text("ana@example.com")
    await expect(results.nth(1)).to_contain_text("Not sent")
    await expect(results.nth(1)).to_contain_text("not-an-address")
    await expect(results.nth(1).locator(".reason")).to_contain_text("not a valid email address")
    await expect(results.nth(2)).to_contain_text("Already a member")
    await expect(results.nth(2)).to_contain_text("already exists")
    await expect(page.locator(".results-summary")).to_have_text(
        re.compile(r"1 invited, 1 already a member, 1 not sent\.")
    )
    # The address to correct stays in the box; the others are done.
    await expect(page.get_by_label("Email addresses")).to_have_value("not-an-address")
    await expect(page.locator(".toast").first).to_contain_text("Invitations: 1 invited")
    await expect(page.locator("#invite-results .notice")).to_contain_text("Email is not configured")
    row = page.locator("#invitation-list tbody tr", has_text="ana@example.com")
    await expect(row).to_contain_text("Pending")
    await expect(row).to_contain_text("guest")
    assert console.latest_mail("ana@example.com")["subject"].startswith("Welcome to")
    await screenshot(page, "invitations-results")

    # Inviting the same address again sends it again.
    await invite(page, "ana@example.com")
    await expect(page.locator(".invite-results li")).to_have_count(1)
    await expect(page.locator(".invite-results li")).to_contain_text("Invited again")

    await row.get_by_role("button", name="Resend").click()
    await expect(page.locator(".toast", has_text="sent again")).to_be_visible()
    await expect(row).to_contain_text("(3×)")
    await expect(page.locator(".toast", has_text="Email is not configured")).to_be_visible()

    await row.get_by_role("button", name="Revoke").click()
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Revoke the invitation to ana@example.com?")
    await dialog.get_by_role("button", name="Revoke").click()
    await expect(dialog).to_be_hidden()
    await expect(row).to_contain_text("Revoked")
    await expect(row.get_by_role("button", name="Resend")).to_have_count(0)
    await expect(page.locator(".toast", has_text="was revoked")).to_be_visible()

    await page.locator("#invitation-list .tabs").get_by_role("link", name="Pending").click()
    await expect(page).to_have_url(re.compile(r"/invitations\?status=pending$"))
    await expect(page.locator("#invitation-list .empty")).to_contain_text("No pending invitations")
    await page.locator("#invitation-list .tabs").get_by_role("link", name="Revoked").click()
    await expect(page.locator("#invitation-list tbody tr")).to_have_count(1)


async def test_invite_link_shown_once_copied_used_and_revoked(console: Console) -> None:
    page = await console.new_page()
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await console.sign_in(page)
    await page.goto("/invitations")
    await expect(page.locator("#no-links")).to_have_text("No invite links yet.")

    await page.get_by_label("Expires after (days)").fill("3")
    await page.get_by_label("Max uses").fill("0")
    await page.get_by_role("button", name="Create link").click()
    await expect(page.locator("#error-max_uses")).to_contain_text("greater than or equal to 1")

    await page.get_by_label("Max uses").fill("10")
    await page.locator("#link-role").select_option("guest")
    await page.get_by_role("button", name="Create link").click()
    link = page.locator(".invite-link").first
    await expect(link).to_contain_text("0 of 10 uses")
    await expect(link).to_contain_text("guest")
    await expect(link).to_contain_text("Active")
    await expect(page.locator("#no-links")).to_have_count(0)
    await expect(page.locator("#error-max_uses")).to_be_empty()
    url_field = link.locator("input[data-link-url]")
    url = await url_field.input_value()
    assert url.startswith(f"{console.url}/join/")
    await link.get_by_role("button", name="Copy link").click()
    await expect(link.get_by_role("button", name="Copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == url
    await expect(link).to_contain_text("shown only this once")
    await screenshot(page, "invitations-links", full_page=True)

    join_page = httpx.get(url, timeout=30)
    assert join_page.status_code == 200
    assert "Join" in join_page.text
    token = url.rsplit("/", 1)[1]
    joined = httpx.post(
        f"{console.url}/api/v1/join/{token}",
        json={
            "name": "Gus Guest",
            "username": "gus",
            "email": "gus@example.com",
            "password": "a long guest passphrase 42",
        },
        timeout=30,
    )
    assert joined.status_code == 201, joined.text

    # Reloaded, the link is counted but no longer shown.
    await page.reload()
    link = page.locator(".invite-link").first
    await expect(link).to_contain_text("1 of 10 uses")
    await expect(link.locator("input[data-link-url]")).to_have_count(0)

    await link.get_by_role("button", name="Revoke").click()
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_contain_text(
        "Revoke the invite link for the role guest (1 of 10 uses)?"
    )
    await dialog.get_by_role("button", name="Revoke").click()
    await expect(link).to_contain_text("Revoked")
    await expect(link.get_by_role("button", name="Revoke")).to_have_count(0)
    assert httpx.get(url, timeout=30).status_code == 410


async def test_seat_limit_refuses_more_invitations_than_free_seats(console: Console) -> None:
    changed = console.api("PATCH", "/settings", json={"seat_limit": 2})
    assert changed.status_code == 200, changed.text
    page = await console.new_page()
    await console.sign_in(page)
    await page.goto("/invitations")
    await expect(page.locator("#seats")).to_contain_text("1/2 seats used")

    await invite(page, "one@example.com two@example.com")
    refusal = page.locator("#invite-results .refusal")
    await expect(refusal).to_contain_text("Nothing was sent.")
    await expect(refusal).to_contain_text("2 more seats do not fit: 1 of 2 seats are used")
    await expect(page.get_by_label("Email addresses")).to_have_value(
        "one@example.com two@example.com"
    )
    await expect(page.locator("#invitation-list .empty")).to_be_visible()
    await screenshot(page, "invitations-seat-limit")

    await invite(page, "one@example.com")
    await expect(page.locator(".invite-results li")).to_contain_text("Invited")
    await invite(page, "two@example.com")
    await expect(refusal).to_contain_text("All 2 seats are taken (2 used)")


async def test_new_user_by_hand(console: Console) -> None:
    page = await console.new_page(height=1150)
    await console.sign_in(page)
    await page.goto("/users/new")
    await expect(page.get_by_role("heading", name="New user", exact=True)).to_be_visible()
    await expect(page.locator("input[name=roles][value=user]")).to_be_checked()

    await page.get_by_label("Name", exact=True).fill("Nadia Novak")
    await page.get_by_label("Username", exact=True).fill("-nadia")
    await page.get_by_label("Email", exact=True).fill("nadia@example.com")
    await page.get_by_label("Password (optional)").fill("nadia")
    feedback = page.locator("#policy-feedback")
    await expect(feedback.locator("li.unmet").first).to_be_visible()
    await page.get_by_role("button", name="Create user").click()
    await expect(page.locator("#error-username")).to_have_text(
        "Must start with a letter or a digit."
    )
    await expect(page.locator("#error-password")).to_contain_text("Must meet the policy")
    await expect(page.get_by_label("Username", exact=True)).to_have_attribute(
        "aria-invalid", "true"
    )
    await expect(page.get_by_label("Name", exact=True)).to_have_value("Nadia Novak")
    await expect(page.get_by_label("Password (optional)")).to_have_value("")
    await screenshot(page, "new-user-errors")

    await page.get_by_label("Username", exact=True).fill("nadia")
    await page.get_by_label("Password (optional)").fill("a much better passphrase 7")
    await expect(feedback.locator("li.unmet")).to_have_count(0)
    await page.locator("input[name=roles][value=guest]").check()
    await page.get_by_role("button", name="Create user").click()
    await expect(page).to_have_url(re.compile(r"/users\?user=[\w-]+$"))
    panel = page.locator("#panel .panel")
    await expect(panel).to_contain_text("Nadia Novak")
    await expect(panel).to_contain_text("@nadia")
    await expect(panel.locator(".profile .badge.pending")).to_have_text("Pending")
    await expect(panel).to_contain_text("guest")
    mail = console.latest_mail("nadia@example.com")
    assert "account is ready" in mail["subject"]

    # A taken username is refused beside its field.
    await page.goto("/users/new")
    await page.get_by_label("Name", exact=True).fill("Nadia Again")
    await page.get_by_label("Username", exact=True).fill("NADIA")
    await page.get_by_label("Email", exact=True).fill("nadia2@example.com")
    await page.get_by_role("button", name="Create user").click()
    await expect(page.locator("#error-username")).to_contain_text("already taken")
