"""The Webhooks page in Chromium: register an endpoint (errors beside the fields), the
secret shown once, a ping delivered by the server's own worker to a receiver in this
process, and the delivery log."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import expect

from tests.browser.conftest import Console, screenshot
from tests.test_webhooks import Receiver


async def test_an_admin_registers_an_endpoint_pings_it_and_reads_the_log(console: Console) -> None:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        page = await console.new_page()
        await console.sign_in(page)
        await page.get_by_role("link", name="Webhooks", exact=True).click()
        await expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()

        await page.get_by_label("URL").fill("ftp://files.example/")
        await page.get_by_role("button", name="Register endpoint").click()
        await expect(page.locator("#error-url")).to_contain_text("http:// or https://")
        await expect(page.locator("#error-events")).to_contain_text("at least 1")

        await page.get_by_label("URL").fill(receiver.url())
        await page.get_by_label("Description").fill("HR system")
        await page.get_by_role("checkbox", name="user.created").check()
        await page.get_by_label(re.compile("Allow private networks")).check()
        await page.get_by_role("button", name="Register endpoint").click()
        secret = page.locator("#webhook-secret")
        await expect(secret).to_have_text(re.compile(r"^whsec_"))
        await screenshot(page, "webhook-registered")

        await page.get_by_role("button", name="Send a ping").click()
        await expect(page.locator("#webhook-secret")).to_have_count(0)  # shown once
        rows = page.locator("table.deliveries tbody tr")
        await expect(rows).to_have_count(1)
        for _ in range(40):  # the server's worker looks for due rows every 2 s
            if "delivered" in (await rows.first.inner_text()):
                break
            await asyncio.sleep(0.5)
            await page.reload()
        await expect(rows.first).to_contain_text("delivered")
        await expect(rows.first).to_contain_text("200")
        assert [r.json()["type"] for r in receiver.requests] == ["ping"]
        await screenshot(page, "webhook-log")

        # Deleting asks first, naming what goes.
        dialog = page.locator("#confirm-dialog")
        await page.get_by_role("button", name="Delete").click()
        await expect(dialog).to_contain_text(f"Delete the endpoint {receiver.url()}?")
        await screenshot(page, "webhook-delete-confirm")
        await dialog.get_by_role("button", name="Cancel").click()
        await expect(page.get_by_role("heading", name=receiver.url())).to_be_visible()
        await page.get_by_role("button", name="Delete").click()
        await dialog.get_by_role("button", name="Delete endpoint").click()
        await expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
        await expect(page.get_by_text(receiver.url())).to_have_count(0)
    finally:
        server.close()
