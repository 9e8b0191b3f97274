"""The Roles page in Chromium: the list with holders and permissions, the role panel, New role
with errors beside the fields, Edit, Delete through the confirmation (refused while the role
is held), and what a user-manager and an admin may see and grant."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.conftest import Console, screenshot

BUILT_IN = ["owner", "admin", "user-manager", "user", "guest", "bot"]
PASSWORD = "a long and unguessable passphrase"


def person(console: Console, username: str, roles: list[str]) -> str:
    created = console.api(
        "POST",
        "/users",
        json={
            "name": username.title(),
            "username": username,
            "email": f"{username}@example.com",
            "password": PASSWORD,
            "roles": roles,
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def open_roles(console: Console, login: str = "olive", password: str | None = None) -> Page:
    page = await console.new_page()
    if password is None:
        await console.sign_in(page, login)
    else:
        await console.sign_in(page, login, password)
    await page.get_by_role("link", name="Roles", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/roles$"))
    return page


async def test_roles_list_create_edit_delete(console: Console) -> None:
    page = await open_roles(console)
    rows = page.locator("#role-list tbody tr")
    await expect(rows).to_have_count(6)
    assert [await row.get_attribute("data-role") for row in await rows.all()] == BUILT_IN
    holders = {role["name"]: role["users"] for role in console.api("GET", "/roles").json()["items"]}
    assert holders["owner"] == 1
    for name in BUILT_IN:
        row = page.locator(f'tr[data-role="{name}"]')
        await expect(row.locator(".badge.built-in")).to_have_text("built-in")
        count = holders[name]
        await expect(row.locator("[data-holders]")).to_have_text(
            "1 user" if count == 1 else f"{count} users"
        )
    owner_row = page.locator('tr[data-role="owner"]')
    await expect(owner_row.locator("[data-holders]")).to_have_attribute("href", "/users?role=owner")
    await expect(owner_row).to_contain_text("Act on owners and grant the owner role owners.manage")
    await expect(page.locator('tr[data-role="guest"]')).to_contain_text("No permissions")

    # A click on the row opens the role beside the list, its permissions as a checklist.
    panel = page.locator("#panel")
    await page.locator('tr[data-role="user-manager"] td.col-permissions').click()
    await expect(page).to_have_url(re.compile(r"/roles\?role=user-manager$"))
    await expect(panel.get_by_role("heading", name="user-manager")).to_be_visible()
    await expect(page.locator('tr[data-role="user-manager"]')).to_have_attribute(
        "aria-selected", "true"
    )
    await expect(panel.get_by_label("See every user in the directory")).to_be_checked()
    await expect(panel.get_by_label("Change workspace settings")).not_to_be_checked()
    await expect(panel).to_contain_text("Built-in roles are read-only")
    await expect(panel.get_by_role("link", name="Edit")).to_have_count(0)
    await expect(panel.get_by_role("button", name="Delete")).to_have_count(0)
    await screenshot(page, "roles-built-in-open")
    await page.reload()
    await expect(panel.get_by_role("heading", name="user-manager")).to_be_visible()

    # New role: a bad name, then a taken one, each beside the name field, nothing saved.
    await page.get_by_role("link", name="New role").click()
    await expect(page).to_have_url(re.compile(r"/roles\?new=1$"))
    await expect(panel.get_by_label("Act on owners and grant the owner role")).to_be_enabled()
    await panel.get_by_label("Name", exact=True).fill("Support Team")
    await panel.get_by_label("Description").fill("First-line support")
    await panel.get_by_label("See every user in the directory").check()
    await panel.get_by_role("button", name="Create role").click()
    await expect(panel.locator("#error-name")).to_contain_text("lowercase ASCII letters")
    await expect(panel.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    await expect(panel.get_by_label("Description")).to_have_value("First-line support")
    await expect(panel.get_by_label("See every user in the directory")).to_be_checked()
    await panel.get_by_label("Name", exact=True).fill("admin")
    await panel.get_by_role("button", name="Create role").click()
    await expect(panel.locator("#error-name")).to_have_text("a role named admin already exists")
    await screenshot(page, "roles-new-error")
    assert console.api("GET", "/roles/support").status_code == 404

    await panel.get_by_label("Name", exact=True).fill("support")
    await panel.get_by_label("Read the audit log").check()
    await panel.get_by_role("button", name="Create role").click()
    await expect(page.locator("#toasts")).to_contain_text("The role support was created.")
    await expect(page).to_have_url(re.compile(r"/roles\?role=support$"))
    await expect(rows).to_have_count(7)
    support_row = page.locator('tr[data-role="support"]')
    await expect(support_row.locator(".badge.built-in")).to_have_count(0)
    await expect(support_row.locator("[data-holders]")).to_have_text("0 users")
    await expect(panel.get_by_label("Read the audit log")).to_be_checked()
    created = console.api("GET", "/roles/support").json()
    assert created["permissions"] == ["audit.read", "users.read"]
    assert created["description"] == "First-line support" and not created["built_in"]

    # Edit: add a permission.
    await panel.get_by_role("link", name="Edit").click()
    await expect(page).to_have_url(re.compile(r"/roles\?role=support&edit=1$"))
    await expect(panel.get_by_label("Name", exact=True)).to_have_value("support")
    await panel.get_by_label("See seat usage").check()
    await panel.get_by_role("button", name="Save role").click()
    await expect(page.locator("#toasts")).to_contain_text("The role support was saved.")
    await expect(page).to_have_url(re.compile(r"/roles\?role=support$"))
    await expect(panel.get_by_label("See seat usage")).to_be_checked()
    await expect(support_row).to_contain_text("See seat usage seats.read")
    assert console.api("GET", "/roles/support").json()["permissions"] == [
        "audit.read",
        "seats.read",
        "users.read",
    ]
    await screenshot(page, "roles-custom-open")

    # While someone holds it, Delete is refused, and the panel says why.
    sam = person(console, "sam", ["user"])
    given = console.api("PUT", f"/users/{sam}/roles", json={"roles": ["support"]})
    assert given.status_code == 200, given.text
    dialog = page.locator("#confirm-dialog")
    await panel.get_by_role("button", name="Delete").click()
    await expect(dialog).to_contain_text("Delete the role support?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await panel.get_by_role("button", name="Delete").click()
    await dialog.get_by_role("button", name="Delete role").click()
    refusal = panel.get_by_role("alert")
    await expect(refusal).to_contain_text("1 user(s) hold the role support")
    await expect(refusal).to_contain_text("take it from them before deleting it")
    await expect(panel).to_contain_text("1 user holds it")
    await expect(support_row.locator("[data-holders]")).to_have_text("1 user")
    await screenshot(page, "roles-delete-refused")
    assert console.api("GET", "/roles/support").status_code == 200

    # Once nobody holds it, it goes.
    taken = console.api("PUT", f"/users/{sam}/roles", json={"roles": ["user"]})
    assert taken.status_code == 200, taken.text
    await panel.get_by_role("button", name="Delete").click()
    await expect(dialog).to_contain_text("Delete the role support?")
    await dialog.get_by_role("button", name="Delete role").click()
    await expect(page.locator("#toasts")).to_contain_text("The role support was deleted.")
    await expect(rows).to_have_count(6)
    await expect(page).to_have_url(re.compile(r"/roles$"))
    await expect(panel.locator(".panel")).to_have_count(0)
    assert console.api("GET", "/roles/support").status_code == 404


async def test_user_manager_sees_roles_but_cannot_change_them(console: Console) -> None:
    made = console.api("POST", "/roles", json={"name": "support", "permissions": ["users.read"]})
    assert made.status_code == 201, made.text
    person(console, "mia", ["user-manager"])
    page = await open_roles(console, "mia", PASSWORD)
    await expect(page.locator("#role-list tbody tr")).to_have_count(7)
    await expect(page.get_by_role("link", name="New role")).to_have_count(0)
    panel = page.locator("#panel")
    await page.get_by_role("link", name="support", exact=True).click()
    await expect(panel.get_by_role("heading", name="support")).to_be_visible()
    await expect(panel.get_by_label("See every user in the directory")).to_be_checked()
    await expect(panel.get_by_role("link", name="Edit")).to_have_count(0)
    await expect(panel.get_by_role("button", name="Delete")).to_have_count(0)
    # Asked for by URL, the form is not there either.
    await page.goto("/roles?role=support&edit=1")
    await expect(panel.get_by_role("heading", name="support")).to_be_visible()
    await expect(panel.locator("form")).to_have_count(0)
    await page.goto("/roles?new=1")
    await expect(panel.locator(".panel")).to_have_count(0)
    await screenshot(page, "roles-user-manager")


async def test_admin_cannot_grant_what_they_lack(console: Console) -> None:
    person(console, "ada", ["admin"])
    page = await open_roles(console, "ada", PASSWORD)
    await page.get_by_role("link", name="New role").click()
    panel = page.locator("#panel")
    owners = panel.get_by_label("Act on owners and grant the owner role")
    await expect(owners).to_be_disabled()
    await expect(panel.locator("label.check.disabled")).to_have_count(1)
    await expect(panel.locator("label.check.disabled")).to_contain_text("you do not hold it")
    await expect(panel.get_by_label("Create users")).to_be_enabled()
    await owners.evaluate("box => box.scrollIntoView({block: 'center'})")
    await screenshot(page, "roles-admin-new")
    # The owner role itself: the admin can open it but nothing offers to change it.
    await page.get_by_role("link", name="owner", exact=True).click()
    await expect(panel.get_by_role("heading", name="owner")).to_be_visible()
    await expect(panel.get_by_role("link", name="Edit")).to_have_count(0)


async def test_narrow_screen(console: Console) -> None:
    page = await console.new_page(width=360, height=740)
    await console.sign_in(page)
    await page.goto("/roles?role=admin")
    await expect(page.locator("#panel").get_by_role("heading", name="admin")).to_be_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, width
    await screenshot(page, "roles-narrow", full_page=True)
