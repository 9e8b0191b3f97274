"""Browser tests: Playwright driving Debian's Chromium against `userdesk serve` processes.

Chromium comes from the distribution (/usr/bin/chromium); when it is missing and we are
root, the test set-up installs it with apt-get. Without it the browser tests fail (never
skip), so a run that cannot look at the console does not pass.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.conftest import mint_token, test_services
from tests.processes import OWNER_PASSWORD, Cli, Server, StartServer, bearer
from userdesk.actions.context import Actor
from userdesk.actions.inputs import UserCreate
from userdesk.actions.users import bootstrap_owner
from userdesk.db import Database

CHROMIUM = os.environ.get("USERDESK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
TIMEOUT_MS = 15_000


def _install_chromium() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(
            f"Chromium is not at {CHROMIUM}; install it (apt-get install -y chromium) or point "
            "USERDESK_TEST_CHROMIUM at a Chromium binary"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")


@dataclass
class Console:
    """A running server with its first owner, and ways in: a bearer token and browsers."""

    server: Server
    cli: Cli
    token: str
    browser: Browser
    contexts: list[BrowserContext]
    # JavaScript errors and console errors (a CSP violation shows up as one) of every page.
    errors: list[str]

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}/api/v1{path}", headers=bearer(self.token), timeout=30, **kwargs
        )

    async def new_page(self, *, width: int = 1360, height: int = 900) -> Page:
        """A page in a fresh browser context (its own cookies: another person's browser)."""
        context = await self.browser.new_context(
            viewport={"width": width, "height": height}, base_url=self.url
        )
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: self._note(page, message.type, message.text))
        return page

    def _note(self, page: Page, kind: str, text: str) -> None:
        # A refusal the page shows (401, 403, 409, 410, 422, 429) is logged by Chromium as a
        # failed load; it is an answer, not an error. A 404 or a 5xx is a broken page.
        refusal = re.search(r"status of (401|403|409|410|422|429) ", text)
        if kind == "error" and not refusal:
            self.errors.append(f"{page.url}: {text}")

    async def sign_in(
        self, page: Page, login: str = "olive", password: str = OWNER_PASSWORD
    ) -> None:
        await page.goto("/login")
        await page.get_by_label("Username or email").fill(login)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(re.compile(r"/(users|account)"))

    def latest_mail(self, to: str) -> dict[str, Any]:
        items = self.api("GET", "/mail").json()["items"]
        found = [m for m in items if m["to"] == to]
        assert found, f"no email to {to} among {[m['to'] for m in items]}"
        return found[0]

    def link_in(self, mail: dict[str, Any]) -> str:
        links = re.findall(r"https?://\S+", mail["text"])
        ours = [link for link in links if link.startswith(self.url)]
        assert ours, f"no link to {self.url} in:\n{mail['text']}"
        return ours[0]


async def _first_owner(database_url: str) -> str:
    """The first owner, "olive", as `userdesk create-owner` makes it, and a token of theirs,
    made in this process (two CLI processes fewer per test)."""
    database = Database(database_url, test_services())
    try:
        async with database.transaction() as session:
            await bootstrap_owner(
                session,
                actor=Actor.system("test"),
                data=UserCreate(
                    name="Administrator",
                    username="olive",
                    email="olive@example.com",
                    password=OWNER_PASSWORD,
                ),
            )
        return await mint_token(database, "olive")
    finally:
        await database.dispose()


@pytest.fixture
async def console(
    database_url: str, tmp_path: Path, start_server: StartServer
) -> AsyncIterator[Console]:
    """A fresh server and database per test, and a Chromium of its own (Playwright's async
    API, so it shares the test's event loop with the rest of the suite)."""
    if not Path(CHROMIUM).is_file():
        _install_chromium()
    cli = Cli(database_url, tmp_path)
    cli.env["USERDESK_COOKIE_SECURE"] = "false"
    token = await _first_owner(database_url)
    server = start_server(cli)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        running = Console(server, cli, token, browser, contexts=[], errors=[])
        try:
            yield running
        finally:
            await browser.close()
    assert not running.errors, "errors in the browser:\n" + "\n".join(running.errors)


async def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Write tests/screenshots/<name>.png (kept out of git; the README shows chosen ones)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # caret="initial": Playwright would hide the caret with an inline style, which our CSP
    # refuses (and reports as an error).
    await page.screenshot(path=str(path), full_page=full_page, caret="initial")
    return path
