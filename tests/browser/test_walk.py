"""The walk of issue 6, in one go as an admin lives it: the first owner signs in, invites
two people, one of them joins from a second browser, a user is created by hand, then search,
sort and filter, edit, make admin, reset password, deactivate and activate, delete; and the
owner turns on 2FA and signs in with it. Screenshots of the main screens are written along
the way (tests/screenshots/walk-*.png)."""

from __future__ import annotations

import re
import time

import pyotp
from playwright.async_api import expect

from tests.browser.conftest import Console, screenshot
from tests.processes import OWNER_PASSWORD

NEWCOMER_PASSWORD = "a newcomer's long passphrase"


async def test_the_walk(console: Console) -> None:
    admin = await console.new_page()
    await admin.goto("/")
    await expect(admin).to_have_url(re.compile(r"/login"))
    await screenshot(admin, "walk-sign-in")
    await console.sign_in(admin)
    await expect(admin.get_by_role("heading", name="Users")).to_be_visible()

    # Invite two people.
    await admin.get_by_role("link", name="Invite").click()
    await admin.get_by_label("Email addresses").fill("nora@example.com\nomar@example.com")
    await admin.get_by_role("button", name="Send invitations").click()
    results = admin.locator("#invite-results")
    await expect(results).to_contain_text("nora@example.com")
    await expect(results).to_contain_text("omar@example.com")
    await expect(results.get_by_text("Invited", exact=True)).to_have_count(2)
    await screenshot(admin, "walk-invite")

    # Nora accepts in her own browser.
    nora = await console.new_page()
    await nora.goto(console.link_in(console.latest_mail("nora@example.com")))
    await nora.get_by_label("Name", exact=True).fill("Nora Quintero")
    await nora.get_by_label("Username").fill("nora")
    await nora.get_by_label("Password").fill(NEWCOMER_PASSWORD)
    await nora.get_by_role("button", name="Create account").click()
    await expect(nora).to_have_url(re.compile(r"/account$"))

    # A user by hand, with the welcome email.
    await admin.goto("/users/new")
    await admin.get_by_label("Name", exact=True).fill("Paula Pérez")
    await admin.get_by_label("Username", exact=True).fill("paula")
    await admin.get_by_label("Email", exact=True).fill("paula@example.net")
    await admin.get_by_label(re.compile("welcome email", re.I)).check()
    await admin.get_by_role("button", name="Create user").click()
    await expect(admin).to_have_url(re.compile(r"/users\?user="))
    panel = admin.locator("#panel")
    await expect(panel.locator(".profile .badge")).to_have_text("Pending")

    # Search, sort and filter.
    await admin.goto("/users")
    rows = admin.locator("table.users tbody tr")
    await expect(rows).to_have_count(3)  # olive, nora, paula; omar is only invited
    await admin.get_by_placeholder("Search by name, username or email").fill("quin")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Nora Quintero")
    await admin.get_by_placeholder("Search by name, username or email").fill("")
    await expect(rows).to_have_count(3)
    email = admin.get_by_role("columnheader", name=re.compile("Email"))
    await email.get_by_role("link").click()
    await expect(email).to_have_attribute("aria-sort", "ascending")
    await email.get_by_role("link").click()
    await expect(email).to_have_attribute("aria-sort", "descending")
    await expect(rows.first).to_contain_text("paula@example.net")
    await admin.get_by_label("Role").select_option("user")
    await expect(rows).to_have_count(2)
    await admin.get_by_role("link", name=re.compile("^Active")).click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Nora Quintero")
    await screenshot(admin, "walk-users-filtered")

    # Edit Nora.
    await rows.first.get_by_role("link", name="Nora Quintero").click()
    await panel.get_by_role("link", name="Edit").click()
    await panel.get_by_label("Nickname").fill("Nono")
    await panel.get_by_label("Status message").fill("Back on Monday")
    await panel.get_by_role("button", name="Save user").click()
    await expect(panel).to_contain_text("Back on Monday")
    await expect(panel).to_contain_text("Nono")

    # Make admin, then reset her password (random, emailed).
    dialog = admin.locator("#confirm-dialog")
    await panel.get_by_role("menuitem", name="Make Admin").click()
    await expect(panel.locator(".roles")).to_contain_text("admin")
    await panel.get_by_role("menuitem", name="Reset password").click()
    await dialog.get_by_role("button", name="Reset password").click()
    await expect(admin.locator("#toasts")).to_contain_text("A new random password was emailed")
    await screenshot(admin, "walk-user-info")
    # Her session ended with the reset.
    await nora.reload()
    await expect(nora).to_have_url(re.compile(r"/login"))

    # Deactivate and activate Paula, then delete her.
    await admin.goto("/users?q=paula")
    paula = admin.locator("tr", has_text="Paula Pérez")
    await paula.get_by_label("Actions for Paula Pérez").click()
    await paula.get_by_role("menuitem", name="Deactivate").click()
    await dialog.get_by_role("button", name="Deactivate").click()
    await expect(paula.locator(".col-status")).to_have_text("Deactivated")
    await paula.get_by_label("Actions for Paula Pérez").click()
    await paula.get_by_role("menuitem", name="Activate").click()
    await expect(paula.locator(".col-status")).to_have_text("Pending")
    await paula.get_by_label("Actions for Paula Pérez").click()
    await paula.get_by_role("menuitem", name="Delete").click()
    await expect(dialog).to_contain_text("Delete Paula Pérez (@paula) permanently?")
    await dialog.get_by_role("button", name="Delete").click()
    await expect(admin.locator("#toasts")).to_contain_text("Paula Pérez (@paula) was deleted.")
    await expect(paula).to_have_count(0)

    # The owner turns on 2FA and signs in with it.
    await admin.goto("/account/two-factor")
    await admin.get_by_label("Current password").fill(OWNER_PASSWORD)
    await admin.get_by_role("button", name="Set up two-factor authentication").click()
    secret = (await admin.locator("#totp-secret").text_content() or "").strip()
    totp = pyotp.TOTP(secret)
    await admin.get_by_label("Code from the app").fill(totp.now())
    await admin.get_by_role("button", name="Turn on").click()
    await expect(admin.locator("#recovery-codes li")).to_have_count(10)
    await admin.get_by_role("button", name="Sign out").click()
    await admin.get_by_label("Username or email").fill("olive")
    await admin.get_by_label("Password").fill(OWNER_PASSWORD)
    await admin.get_by_role("button", name="Sign in").click()
    await expect(admin.get_by_label("Two-factor code")).to_be_visible()
    await screenshot(admin, "walk-two-factor-step")
    # The enrolment spent this step's code; the next step's is accepted (clock drift).
    await admin.get_by_label("Two-factor code").fill(totp.at(time.time() + 30))
    await admin.get_by_role("button", name="Sign in").click()
    await expect(admin).to_have_url(re.compile(r"/users$"))

    audit = console.api("GET", "/audit?limit=200").json()["items"]
    actions = {entry["action"] for entry in audit}
    assert {
        "invitation.sent",
        "invitation.accepted",
        "user.created",
        "user.updated",
        "user.roles_changed",
        "user.password_reset",
        "user.deactivated",
        "user.activated",
        "user.deleted",
        "user.two_factor_enabled",
    } <= actions
