"""The Audit log page in Chromium: filters that follow the URL, and the CSV download."""

from __future__ import annotations

import csv
import io
import re

from playwright.async_api import expect

from tests.browser.conftest import Console, screenshot


async def test_filter_and_export(console: Console) -> None:
    for username in ("ana", "ben"):
        created = console.api(
            "POST",
            "/users",
            json={"name": username.title(), "username": username, "email": f"{username}@ex.com"},
        )
        assert created.status_code == 201
        console.api("POST", f"/users/{created.json()['id']}/deactivate")
    page = await console.new_page()
    await console.sign_in(page)
    await page.get_by_role("link", name="Audit log").click()
    await expect(page).to_have_url(re.compile(r"/audit$"))
    rows = page.locator("#audit-results tbody tr")
    await expect(rows.first).to_contain_text("auth.signed_in")

    await page.get_by_label("Action").select_option("user.deactivated")
    await expect(page).to_have_url(re.compile(r"action=user.deactivated"))
    await expect(rows).to_have_count(2)
    await page.get_by_label("Target").fill("ana")
    await expect(page).to_have_url(re.compile(r"target=ana"))
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("status")
    await screenshot(page, "audit")

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Export CSV").click()
    download = await download_info.value
    assert download.suggested_filename.startswith("userdesk-audit-")
    content = (await download.path()).read_text()
    rows_csv = list(csv.DictReader(io.StringIO(content)))
    assert [(r["action"], r["target_name"]) for r in rows_csv] == [("user.deactivated", "ana")]

    # Clicking a name narrows to that person.
    await page.get_by_role("link", name="Clear filters").click()
    await expect(page).to_have_url(re.compile(r"/audit$"))
    await rows.first.get_by_role("link", name="olive").first.click()
    await expect(page).to_have_url(re.compile(r"actor="))
    await expect(page.get_by_label("Actor")).to_have_value(re.compile(".+"))
