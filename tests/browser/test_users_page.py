"""The Users page in Chromium: sign in, list, search, filter, sort, page, the panel, actions."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image
from playwright.async_api import expect

from tests.browser.conftest import Console, screenshot
from tests.processes import OWNER_PASSWORD

PEOPLE = [
    ("Alice Martin", "alice", "alice@example.com", ["user"]),
    ("Bruno Díaz", "bruno", "bruno@example.org", ["user"]),
    ("Chloé Dubois", "chloe", "chloe@example.net", ["user-manager"]),
    ("Dmitri Ivanov", "dmitri", "dmitri@example.com", ["user"]),
    ("Eve Martin", "eve", "eve@example.org", ["guest"]),
]


def seed(console: Console) -> None:
    for name, username, email, roles in PEOPLE:
        created = console.api(
            "POST",
            "/users",
            json={"name": name, "username": username, "email": email, "roles": roles},
        )
        assert created.status_code == 201, created.text


async def test_sign_in_and_browse(console: Console) -> None:
    """Signing in, paging both ways, search as you type, role filter, sort and tabs; the URL
    carries the view, so reloading shows the same thing."""
    seed(console)
    for n in range(30):
        created = console.api(
            "POST",
            "/users",
            json={"name": f"Zed {n:02}", "username": f"zed{n:02}", "email": f"z{n:02}@ex.com"},
        )
        assert created.status_code == 201, created.text
    page = await console.new_page()
    await page.goto("/users?tab=pending")
    await expect(page).to_have_url(re.compile(r"/login\?next=%2Fusers%3Ftab%3Dpending"))
    await page.get_by_label("Username or email").fill("olive")
    await page.get_by_label("Password").fill(OWNER_PASSWORD)
    await page.get_by_label("Password").press("Enter")
    await expect(page).to_have_url(re.compile(r"/users\?tab=pending$"))
    await page.get_by_role("link", name=re.compile("^All")).click()
    await expect(page).to_have_url(re.compile(r"/users$"))
    rows = page.locator("table.users tbody tr")
    await expect(rows).to_have_count(25)
    tabs = page.locator("#user-tabs")
    await expect(tabs.locator('[data-tab="all"]')).to_have_text("36")
    await expect(tabs.locator('[data-tab="pending"]')).to_have_text("35")
    await expect(tabs.locator('[data-tab="active"]')).to_have_text("1")
    await expect(page.locator("#seats")).to_contain_text("36 seats used")

    await page.get_by_role("link", name="Next ›").click()
    await expect(page).to_have_url(re.compile(r"after="))
    await expect(rows).to_have_count(11)
    await expect(rows.last).to_contain_text("Zed 29")
    await page.get_by_role("link", name="‹ Previous").click()
    await expect(rows).to_have_count(25)
    await expect(rows.first).to_contain_text("Administrator")
    await page.get_by_role("link", name="Last »").click()
    await expect(rows).to_have_count(25)
    await expect(rows.last).to_contain_text("Zed 29")
    await page.get_by_role("link", name="« First").click()
    await expect(rows.first).to_contain_text("Administrator")

    # Search as you type, over name, username and email, with the counts of the matches.
    await page.get_by_placeholder("Search by name, username or email").press_sequentially(
        "martin", delay=30
    )
    await expect(page).to_have_url(re.compile(r"q=martin"))
    await expect(rows).to_have_count(2)
    await expect(tabs.locator('[data-tab="all"]')).to_have_text("2")
    await page.get_by_label("Role").select_option("guest")
    await expect(page).to_have_url(re.compile(r"role=guest"))
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Eve Martin")
    await screenshot(page, "users-search")

    # The view survives a reload: it is all in the URL.
    await page.reload()
    await expect(page.get_by_placeholder("Search by name, username or email")).to_have_value(
        "martin"
    )
    await expect(page.get_by_label("Role")).to_have_value("guest")
    await expect(rows).to_have_count(1)

    await page.goto("/users?q=example")
    email_header = page.get_by_role("columnheader", name=re.compile("Email"))
    await email_header.get_by_role("link").click()
    await expect(email_header).to_have_attribute("aria-sort", "ascending")
    await expect(rows.first).to_contain_text("alice@example.com")
    await email_header.get_by_role("link").click()
    await expect(email_header).to_have_attribute("aria-sort", "descending")
    await expect(page).to_have_url(re.compile(r"sort=-email"))
    await expect(rows.first).to_contain_text("olive@example.com")

    await page.goto("/users?q=no-such-person")
    await expect(page.get_by_text("No users match")).to_be_visible()


async def test_user_info_panel_and_actions(console: Console) -> None:
    """The User Info panel and every action of the menu, each confirmed where it destroys
    or takes access away, with the list, the panel and a toast updated in one answer."""
    seed(console)
    page = await console.new_page()
    await console.sign_in(page)
    await page.goto("/users")
    alice_row = page.locator("tr", has_text="Alice Martin")
    await alice_row.get_by_role("cell", name="alice@example.com").click()
    panel = page.locator("#panel")
    await expect(panel.get_by_role("heading", name="User Info")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"user="))
    await expect(panel).to_contain_text("@alice")
    await expect(panel).to_contain_text("Last login")
    await expect(alice_row).to_have_attribute("aria-selected", "true")
    await screenshot(page, "user-info")

    # A shared link opens the same panel.
    await page.reload()
    await expect(panel.get_by_role("heading", name="User Info")).to_be_visible()

    # Make Admin from the row's menu.
    await alice_row.get_by_label("Actions for Alice Martin").click()
    await alice_row.get_by_role("menuitem", name="Make Admin").click()
    await expect(page.locator("#toasts")).to_contain_text("Alice Martin (@alice) is now an admin.")
    await expect(alice_row.locator(".roles")).to_contain_text("admin")
    await expect(panel.locator(".roles")).to_contain_text("admin")
    # ... and the menu now offers Remove Admin instead.
    await alice_row.get_by_label("Actions for Alice Martin").click()
    await expect(alice_row.get_by_role("menuitem", name="Remove Admin")).to_be_visible()
    await expect(alice_row.get_by_role("menuitem", name="Make Admin")).to_have_count(0)
    await page.keyboard.press("Escape")

    # Deactivate from the panel, through the confirmation dialog; Cancel changes nothing.
    dialog = page.locator("#confirm-dialog")
    await panel.get_by_role("menuitem", name="Deactivate").click()
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Deactivate Alice Martin (@alice)?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(alice_row.locator(".col-status")).to_have_text("Pending")
    await panel.get_by_role("menuitem", name="Deactivate").click()
    await dialog.get_by_role("button", name="Deactivate").click()
    await expect(alice_row.locator(".col-status")).to_have_text("Deactivated")
    await expect(page.locator('[data-tab="deactivated"]')).to_have_text("1")
    assert console.api("GET", "/users?status=deactivated").json()["items"][0]["username"] == (
        "alice"
    )
    await panel.get_by_role("menuitem", name="Activate").click()
    await expect(alice_row.locator(".col-status")).to_have_text("Pending")

    # Reset password: random, emailed.
    await panel.get_by_role("menuitem", name="Reset password").click()
    await expect(dialog).to_contain_text("A random password is emailed to alice@example.com")
    await dialog.get_by_role("button", name="Reset password").click()
    await expect(page.locator("#toasts")).to_contain_text("A new random password was emailed")
    assert "password" in console.latest_mail("alice@example.com")["subject"].lower()

    # Delete, confirmed by name; the panel closes and the URL forgets the user.
    await alice_row.get_by_label("Actions for Alice Martin").click()
    await alice_row.get_by_role("menuitem", name="Delete").click()
    await expect(dialog).to_contain_text("Delete Alice Martin (@alice) permanently?")
    await screenshot(page, "confirm-delete")
    await dialog.get_by_role("button", name="Delete").click()
    await expect(page.locator("#toasts")).to_contain_text("Alice Martin (@alice) was deleted.")
    await expect(page.locator("tr", has_text="Alice Martin")).to_have_count(0)
    await expect(panel.get_by_role("heading", name="User Info")).to_have_count(0)
    await expect(page).not_to_have_url(re.compile(r"user="))
    assert console.api("GET", "/users?q=alice").json()["items"] == []

    # The owner's own row offers nothing that would lock them out.
    olive_row = page.locator("tr", has_text="olive@example.com")
    await olive_row.get_by_label("Actions for Administrator").click()
    for refused in ("Deactivate", "Delete", "Reset password"):
        await expect(olive_row.get_by_role("menuitem", name=refused)).to_have_count(0)


async def test_narrow_screen(console: Console) -> None:
    seed(console)
    page = await console.new_page(width=360, height=740)
    await console.sign_in(page)
    await page.goto("/users")
    await expect(page.locator("table.users tbody tr")).to_have_count(6)
    # Nothing wider than the screen.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, width
    await screenshot(page, "users-narrow", full_page=True)


async def test_edit_user_panel(console: Console, tmp_path: Path) -> None:
    """Edit User: errors beside their fields with nothing saved, then every part at once."""
    seed(console)
    bruno = console.api("GET", "/users?q=bruno").json()["items"][0]
    page = await console.new_page()
    await console.sign_in(page)
    await page.goto(f"/users?user={bruno['id']}")
    panel = page.locator("#panel")
    await panel.get_by_role("link", name="Edit").click()
    await expect(panel.get_by_role("heading", name="Edit User")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"edit=1"))

    await panel.get_by_label("Name", exact=True).fill("Bruno Díaz Ortega")
    await panel.get_by_label("Username").fill("bruno díaz!")
    await panel.get_by_label("Set a password by hand").check()
    await panel.get_by_label("New password").press_sequentially("bruno", delay=20)
    await expect(panel.locator("#edit-policy .unmet").first).to_be_visible()
    await panel.get_by_role("button", name="Save user").click()
    await expect(panel.locator("#error-username")).not_to_be_empty()
    await expect(panel.get_by_text("Nothing was saved")).to_be_visible()
    # What was typed stays (the password does not).
    await expect(panel.get_by_label("Name", exact=True)).to_have_value("Bruno Díaz Ortega")
    await expect(panel.get_by_label("New password")).to_have_value("")
    await screenshot(page, "edit-user-errors")
    assert console.api("GET", f"/users/{bruno['id']}").json()["name"] == "Bruno Díaz"

    picture = tmp_path / "face.png"
    Image.new("RGB", (320, 200), (200, 80, 40)).save(picture)
    await panel.get_by_label("Username").fill("bruno.diaz")
    await panel.get_by_label("Picture to upload").set_input_files(str(picture))
    await expect(panel.get_by_label("Upload a picture")).to_be_checked()
    await panel.get_by_label("Status message").fill("On holiday")
    await panel.get_by_label("Timezone").fill("America/Mexico_City")
    await panel.get_by_label("user-manager").check()
    await panel.get_by_label("New password").fill("plaza de la constitución 1857")
    await panel.get_by_label("Send the welcome email").check()
    await panel.get_by_role("button", name="Save user").click()
    await expect(panel.get_by_role("heading", name="User Info")).to_be_visible()
    await expect(page.locator("#toasts")).to_contain_text("profile saved")
    await expect(page).not_to_have_url(re.compile(r"edit=1"))
    await expect(panel).to_contain_text("@bruno.diaz")
    await expect(panel).to_contain_text("On holiday")
    await expect(panel.locator(".avatar img")).to_be_visible()
    row = page.locator(f"#row-{bruno['id']}")
    await expect(row).to_contain_text("Bruno Díaz Ortega")
    await expect(row.locator(".roles")).to_contain_text("user-manager")
    await screenshot(page, "edit-user-saved")

    saved = console.api("GET", f"/users/{bruno['id']}").json()
    assert saved["username"] == "bruno.diaz" and saved["timezone"] == "America/Mexico_City"
    assert saved["roles"] == ["user", "user-manager"] and saved["avatar"]["kind"] == "upload"
    assert saved["has_password"] and saved["require_password_change"]
    assert "account is ready" in console.latest_mail("bruno@example.org")["subject"]

    # Back to initials.
    await panel.get_by_role("link", name="Edit").click()
    await panel.get_by_label("Use initials").check()
    await panel.get_by_role("button", name="Save user").click()
    await expect(panel.locator(".avatar img")).to_have_count(0)
    assert console.api("GET", f"/users/{bruno['id']}").json()["avatar"]["kind"] == "initials"


async def test_keyboard_alone(console: Console) -> None:
    """Open a user, use the menu, confirm and cancel, close the panel: keys only."""
    seed(console)
    page = await console.new_page()
    await console.sign_in(page)
    await page.goto("/users")
    await page.get_by_role("link", name="Alice Martin").focus()
    await page.keyboard.press("Enter")
    panel = page.locator("#panel")
    heading = panel.get_by_role("heading", name="User Info")
    await expect(heading).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(heading).to_have_count(0)

    row = page.locator("tr", has_text="Alice Martin")
    await row.get_by_label("Actions for Alice Martin").focus()
    await page.keyboard.press("Enter")
    deactivate = row.get_by_role("menuitem", name="Deactivate")
    await expect(deactivate).to_be_visible()
    await deactivate.focus()
    await page.keyboard.press("Enter")
    dialog = page.locator("#confirm-dialog")
    await expect(dialog.get_by_role("button", name="Deactivate")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(row.locator(".col-status")).to_have_text("Pending")

    await row.get_by_label("Actions for Alice Martin").focus()
    await page.keyboard.press("Enter")
    await row.get_by_role("menuitem", name="Deactivate").focus()
    await page.keyboard.press("Enter")
    await page.keyboard.press("Enter")  # the dialog's focused Deactivate
    await expect(row.locator(".col-status")).to_have_text("Deactivated")

    # The search box and the role filter work from the keyboard too.
    await page.get_by_placeholder("Search by name, username or email").focus()
    await page.keyboard.type("dmitri")
    await expect(page.locator("table.users tbody tr")).to_have_count(1)


async def test_an_upload_over_the_server_limit_is_a_toast(console: Console, tmp_path: Path) -> None:
    """The picture passes the page's own size check, but the whole request is over the
    server's limit: the 413 becomes a toast, and the panel stays as it was."""
    seed(console)
    eve = console.api("GET", "/users?q=eve").json()["items"][0]
    page = await console.new_page()
    await console.sign_in(page)
    await page.goto(f"/users?user={eve['id']}&edit=1")
    panel = page.locator("#panel")
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\0" * (1024 * 1024 - 100))
    await panel.get_by_label("Picture to upload").set_input_files(str(big))
    await panel.get_by_role("button", name="Save user").click()
    await expect(page.locator("#toasts .toast.error")).to_contain_text("too large")
    await expect(panel.get_by_role("heading", name="Edit User")).to_be_visible()
    assert console.api("GET", f"/users/{eve['id']}").json()["avatar"]["kind"] == "initials"
    # Chromium and htmx both log the refused upload; that refusal is this test's point.
    console.errors[:] = [e for e in console.errors if "413" not in e]
