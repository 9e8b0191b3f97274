"""My account in Chromium: profile and sessions, 2FA from enrolment to signing in with a
recovery code, the enrolment a role requires, and personal access tokens."""

from __future__ import annotations

import re

import httpx
import pyotp
from playwright.async_api import Page, expect

from tests.browser.conftest import Console, screenshot

PASSWORD = "a long and unguessable passphrase"


def create_user(console: Console, username: str, name: str, roles: list[str]) -> str:
    created = console.api(
        "POST",
        "/users",
        json={
            "name": name,
            "username": username,
            "email": f"{username}@example.com",
            "password": PASSWORD,
            "roles": roles,
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def signed_in(console: Console, username: str) -> Page:
    page = await console.new_page()
    await console.sign_in(page, username, PASSWORD)
    return page


async def test_a_plain_user_edits_the_profile_and_ends_a_session(console: Console) -> None:
    user_id = create_user(console, "uma", "Uma Lindqvist", ["user"])
    page = await signed_in(console, "uma")
    await expect(page).to_have_url(re.compile(r"/account$"))
    summary = page.locator("#profile-summary")
    await expect(summary).to_contain_text("Uma Lindqvist")
    await expect(summary).to_contain_text("@uma")
    await expect(summary).to_contain_text("uma@example.com")
    await expect(summary.locator(".badge", has_text="unverified")).to_be_visible()
    await expect(summary.locator(".roles .badge")).to_have_text(["user"])
    await expect(summary.locator(".avatar")).to_have_text("UL")

    # A wrong field is named beside it; nothing is saved.
    await page.get_by_label("Timezone").fill("Mars/Olympus")
    await page.get_by_label("Nickname").fill("Umi")
    await page.get_by_role("button", name="Save profile").click()
    await expect(page.locator("#error-timezone")).to_contain_text("IANA time zone name")
    await expect(page.get_by_label("Timezone")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Nickname")).to_have_value("Umi")
    assert console.api("GET", f"/users/{user_id}").json()["nickname"] is None

    await page.get_by_label("Timezone").fill("Europe/Paris")
    await page.get_by_label("Status message").fill("Writing tests")
    await page.get_by_role("button", name="Save profile").click()
    await expect(page.locator("#toasts")).to_contain_text("Your profile was saved.")
    await expect(page.locator("#error-timezone")).to_be_empty()
    await expect(summary).to_contain_text("“Writing tests”")
    saved = console.api("GET", f"/users/{user_id}").json()
    assert (saved["nickname"], saved["timezone"], saved["status_message"]) == (
        "Umi",
        "Europe/Paris",
        "Writing tests",
    )

    # A second browser; the first signs it out.
    other = await signed_in(console, "uma")
    await page.reload()
    sessions = page.locator("#sessions li.session")
    await expect(sessions).to_have_count(2)
    await expect(page.locator("#sessions li.current")).to_contain_text("This browser")
    await page.locator("#sessions li:not(.current)").get_by_role("button", name="Sign out").click()
    await expect(page.locator("#toasts")).to_contain_text("That session was signed out.")
    await expect(sessions).to_have_count(1)
    await other.goto("/account")
    await expect(other).to_have_url(re.compile(r"/login\?next="))

    # A guest (no profile.edit) sees the profile but no form.
    create_user(console, "gus", "Gus Guest", ["guest"])
    guest = await signed_in(console, "gus")
    await expect(guest).to_have_url(re.compile(r"/account$"))
    await expect(guest.locator("#profile-summary")).to_contain_text("Gus Guest")
    await expect(guest.locator("#profile-read-only")).to_be_visible()
    await expect(guest.locator("#profile-form")).to_have_count(0)
    await screenshot(guest, "account-guest")

    # Screenshots last: Playwright leaves style="" on the inputs it hid the caret of, which
    # htmx's settling would copy onto a swapped form (and the CSP refuse).
    await page.get_by_label("Timezone").fill("Mars/Olympus")
    await page.get_by_role("button", name="Save profile").click()
    await expect(page.locator("#error-timezone")).to_contain_text("IANA time zone name")
    await screenshot(page, "account-error")
    await page.goto("/account")
    await expect(page.locator("#sessions li.current")).to_contain_text("Chrome on Linux")
    await screenshot(page, "account", full_page=True)


async def enrol(page: Page, *, shot: str | None = None) -> list[str]:
    """From the 2FA page: the password, the key read off the page, a code; the codes."""
    await page.get_by_label("Current password").fill(PASSWORD)
    await page.get_by_role("button", name="Set up two-factor authentication").click()
    await expect(page.locator(".qr svg")).to_be_visible()
    secret = (await page.locator("#totp-secret").text_content() or "").strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    await page.get_by_label("Code from the app").fill("000000")
    await page.get_by_role("button", name="Turn on").click()
    await expect(page.locator("#confirm-error-code")).to_contain_text("not the current code")
    await expect(page.locator(".qr svg")).to_be_visible()  # the key stays on the page
    if shot:
        await screenshot(page, shot)
    await page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Turn on").click()
    codes = page.locator("#recovery-codes li")
    await expect(codes).to_have_count(10)
    await expect(page.locator("#toasts")).to_contain_text("Two-factor authentication is on.")
    return [(text or "").strip() for text in await codes.all_text_contents()]


async def test_two_factor_from_enrolment_to_signing_in_with_a_recovery_code(
    console: Console,
) -> None:
    create_user(console, "tess", "Tess Ng", ["user"])
    page = await signed_in(console, "tess")
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.get_by_role("link", name="Set up two-factor authentication").click()
    await expect(page).to_have_url(re.compile(r"/account/two-factor$"))
    codes = await enrol(page, shot="two-factor-enrolment")
    await screenshot(page, "recovery-codes")
    copy = page.locator("button[data-copy='#recovery-codes']")
    await copy.click()
    await expect(copy).to_have_text("Copied")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied.split() == codes

    await page.get_by_role("link", name="I have saved them, continue").click()
    await expect(page.locator("#codes-left")).to_have_text("10 of 10")
    await expect(page.locator("#recovery-codes")).to_have_count(0)  # shown once only

    # Signing in now asks for a code; the confirming code's step is spent, so a recovery
    # code it is.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login"))
    await page.get_by_label("Username or email").fill("tess")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_label("Two-factor code")).to_be_visible()
    await page.get_by_label("Two-factor code").fill(codes[0])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/account$"))
    await expect(
        page.locator("#profile-summary .badge", has_text=re.compile(r"^on$"))
    ).to_be_visible()

    # New recovery codes (password and a code), then off again, through the confirmation.
    await page.goto("/account/two-factor")
    await expect(page.locator("#codes-left")).to_have_text("9 of 10")
    regenerate = page.locator("#two-factor-regenerate")
    await regenerate.get_by_label("Current password").fill(PASSWORD)
    await regenerate.get_by_label("Code from your app, or a recovery code").fill(codes[0])
    await regenerate.get_by_role("button", name="Make new recovery codes").click()
    await expect(page.locator("#regenerate-error-code")).to_contain_text("already used")
    await regenerate.get_by_label("Current password").fill(PASSWORD)
    await regenerate.get_by_label("Code from your app, or a recovery code").fill(codes[1])
    await regenerate.get_by_role("button", name="Make new recovery codes").click()
    fresh = page.locator("#recovery-codes li")
    await expect(fresh).to_have_count(10)
    new_codes = [(text or "").strip() for text in await fresh.all_text_contents()]
    assert not set(new_codes) & set(codes)

    await page.get_by_role("link", name="I have saved them, continue").click()
    disable = page.locator("#two-factor-disable")
    await disable.get_by_label("Current password").fill(PASSWORD)
    await disable.get_by_label("Code from your app, or a recovery code").fill(new_codes[0])
    await disable.get_by_role("button", name="Turn off two-factor authentication").click()
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_contain_text("Turn off two-factor authentication?")
    await dialog.get_by_role("button", name="Turn off").click()
    await expect(page.locator("#toasts")).to_contain_text("Two-factor authentication is off.")
    await expect(
        page.get_by_role("button", name="Set up two-factor authentication")
    ).to_be_visible()


async def test_a_role_that_requires_two_factor_sends_the_user_to_enrol(console: Console) -> None:
    create_user(console, "rita", "Rita Moreno", ["user"])
    changed = console.api("PATCH", "/settings", json={"two_factor_required_roles": ["user"]})
    assert changed.status_code == 200, changed.text
    page = await signed_in(console, "rita")
    await expect(page).to_have_url(re.compile(r"/account/two-factor$"))
    await expect(page.locator(".notice")).to_contain_text("A role of yours requires")
    await page.goto("/account/tokens")
    await expect(page).to_have_url(re.compile(r"/account/two-factor$"))
    await enrol(page)
    await page.get_by_role("link", name="I have saved them, continue").click()
    await expect(page).to_have_url(re.compile(r"/account$"))
    await expect(page.locator("#profile-summary")).to_contain_text("Rita Moreno")


async def test_tokens_are_created_shown_once_and_revoked(console: Console) -> None:
    create_user(console, "theo", "Theo Park", ["user"])
    page = await signed_in(console, "theo")
    await page.get_by_role("link", name="Access tokens", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/account/tokens$"))
    await expect(page.locator("#tokens-area")).to_contain_text("You have no tokens yet.")

    await page.get_by_role("button", name="Create token").click()
    await expect(page.locator("#error-token-name")).to_contain_text("must not be empty")
    await page.get_by_label("Name").fill("backup script")
    await page.get_by_label("Expires after (days)").fill("30")
    await page.get_by_role("button", name="Create token").click()
    secret = (await page.locator("#token-secret").text_content() or "").strip()
    assert secret
    await expect(page.locator("#toasts")).to_contain_text("The token “backup script” was created.")
    row = page.locator("table.tokens tbody tr", has_text="backup script")
    await expect(row).to_contain_text("all yours")
    await expect(row).to_contain_text(secret[:8])

    await page.get_by_label("Name").fill("profile only")
    await page.get_by_label("Only what is checked below").check()
    await page.get_by_label("profile.edit").check()
    await page.get_by_role("button", name="Create token").click()
    limited = page.locator("table.tokens tbody tr", has_text="profile only")
    await expect(limited.locator(".badge")).to_have_text(["profile.edit"])
    await screenshot(page, "tokens", full_page=True)

    me = httpx.get(
        f"{console.url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )
    assert me.status_code == 200 and me.json()["username"] == "theo"

    await page.reload()
    await expect(page.locator("#token-secret")).to_have_count(0)  # shown once only
    await expect(row.locator("td").nth(2)).not_to_have_text("never")  # last used

    dialog = page.locator("#confirm-dialog")
    await row.get_by_role("button", name="Revoke").click()
    await expect(dialog).to_contain_text("Revoke the token “backup script”?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(row.get_by_role("button", name="Revoke")).to_be_visible()
    await row.get_by_role("button", name="Revoke").click()
    await dialog.get_by_role("button", name="Revoke").click()
    await expect(page.locator("#toasts")).to_contain_text("The token “backup script” was revoked.")
    await expect(row.locator(".badge")).to_have_text("revoked")
    await expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    gone = httpx.get(
        f"{console.url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )
    assert gone.status_code == 401
