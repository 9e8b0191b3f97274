"""The Users page in Chromium: sign in, list, search, filter, sort, page, the panel, actions."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.browser.conftest import Console, screenshot

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
    seed(console)
    page = await console.new_page()
    await page.goto("/users")
    await expect(page).to_have_url(re.compile(r"/login\?next=%2Fusers"))
    await console.sign_in(page)
    await expect(page).to_have_url(re.compile(r"/users$"))
    await expect(page.get_by_role("heading", name="Users")).to_be_visible()
    rows = page.locator("table.users tbody tr")
    await expect(rows).to_have_count(6)
    await screenshot(page, "users")
