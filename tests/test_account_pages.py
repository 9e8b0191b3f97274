"""The My account pages over HTTP (in process): what a plain user, a guest and someone
without the page's CSRF token get; the browser's view is in tests/browser/test_account.py."""

from __future__ import annotations

import re

import httpx
import pyotp

from tests.conftest import Directory

PASSWORD = "a long and unguessable passphrase"
ORIGIN = {"origin": "http://userdesk.test"}


async def sign_in(client: httpx.AsyncClient, login: str) -> str:
    """Sign in through the console's form, land on /account; return the CSRF token."""
    answer = await client.post(
        "/login", data={"login": login, "password": PASSWORD, "next": "/"}, headers=ORIGIN
    )
    assert answer.status_code == 303, answer.text
    home = await client.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/account"
    page = await client.get("/account")
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, page.text
    return found.group(1)


async def test_account_needs_a_session(client: httpx.AsyncClient) -> None:
    for path in ("/account", "/account/two-factor", "/account/tokens"):
        answer = await client.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")


async def test_changes_need_the_csrf_token(client: httpx.AsyncClient, directory: Directory) -> None:
    await directory.create("uma", password=PASSWORD, roles=["user"])
    csrf = await sign_in(client, "uma")
    for path, data in (
        ("/account", {"name": "Mallory"}),
        ("/account/tokens", {"name": "stolen"}),
        ("/account/two-factor/setup", {"password": PASSWORD}),
    ):
        refused = await client.post(path, data=data, headers=ORIGIN)
        assert refused.status_code == 403, path
        assert "out of date or came from another site" in refused.text
        cross = await client.post(
            path, data={**data, "csrf_token": csrf}, headers={"origin": "https://evil.example"}
        )
        assert cross.status_code == 403, path
    me = await client.get("/account")
    assert "Mallory" not in me.text and "stolen" not in (await client.get("/account/tokens")).text


async def test_profile_errors_beside_the_field_and_save(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.create("uma", name="Uma Thurman", password=PASSWORD, roles=["user"])
    csrf = await sign_in(client, "uma")
    form = {"csrf_token": csrf, "name": "Uma T.", "nickname": "", "timezone": "Mars/Olympus"}
    wrong = await client.post("/account", data=form, headers=ORIGIN)
    assert wrong.status_code == 422
    assert re.search(r'id="error-timezone">must be an IANA time zone name', wrong.text)
    assert 'value="Mars/Olympus"' in wrong.text  # what was typed stays in the form

    htmx = {**ORIGIN, "HX-Request": "true", "X-CSRF-Token": csrf}
    saved = await client.post(
        "/account",
        data={"name": "Uma T.", "nickname": "Umi", "timezone": "Europe/Paris", "bio": ""},
        headers=htmx,
    )
    assert saved.status_code == 200
    assert "Your profile was saved." in saved.text and 'hx-swap-oob="true"' in saved.text
    me = (await client.get("/api/v1/me")).json()
    assert (me["name"], me["nickname"], me["timezone"]) == ("Uma T.", "Umi", "Europe/Paris")
    cleared = await client.post(
        "/account", data={"name": "Uma T.", "nickname": "", "timezone": ""}, headers=htmx
    )
    assert cleared.status_code == 200
    me = (await client.get("/api/v1/me")).json()
    assert me["nickname"] is None and me["timezone"] is None


async def test_a_guest_sees_the_profile_read_only(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.create("gus", password=PASSWORD, roles=["guest"])
    csrf = await sign_in(client, "gus")
    page = await client.get("/account")
    assert 'id="profile-read-only"' in page.text and 'id="profile-form"' not in page.text
    refused = await client.post(
        "/account", data={"csrf_token": csrf, "name": "Gus Guest"}, headers=ORIGIN
    )
    assert refused.status_code == 403 and "profile.edit" in refused.text
    # Tokens and 2FA are one's own credentials: a guest has them too.
    assert (await client.get("/account/tokens")).status_code == 200
    assert (await client.get("/account/two-factor")).status_code == 200


async def test_a_wrong_password_counts_and_the_key_is_shown_once(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.create("uma", password=PASSWORD, roles=["user"])
    csrf = await sign_in(client, "uma")
    htmx = {**ORIGIN, "HX-Request": "true", "X-CSRF-Token": csrf}
    wrong = await client.post("/account/two-factor/setup", data={"password": "no"}, headers=htmx)
    assert wrong.status_code == 422
    assert 'id="setup-error-password">is not your password' in wrong.text
    assert "HX-Retarget" not in wrong.headers  # the form alone, swapped in place

    setup = await client.post(
        "/account/two-factor/setup", data={"password": PASSWORD}, headers=htmx
    )
    assert setup.status_code == 200 and setup.headers["HX-Retarget"] == "#two-factor-step"
    assert setup.headers["cache-control"] == "no-store"
    found = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', setup.text)
    assert found and "<svg" in setup.text
    bad = await client.post("/account/two-factor/confirm", data={"code": "000000"}, headers=htmx)
    assert bad.status_code == 422 and 'id="confirm-error-code"' in bad.text
    # Without htmx a wrong code re-asks for a code of the key the app holds, without it.
    plain = await client.post(
        "/account/two-factor/confirm", data={"code": "000000", "csrf_token": csrf}, headers=ORIGIN
    )
    assert plain.status_code == 422 and found.group(1) not in plain.text
    assert "start again" in plain.text

    code = pyotp.TOTP(found.group(1)).now()
    done = await client.post("/account/two-factor/confirm", data={"code": code}, headers=htmx)
    assert done.status_code == 200
    codes = re.findall(r"<li>([^<]+)</li>", done.text.split('id="recovery-codes"')[1])
    assert len(codes) == 10
    status = (await client.get("/api/v1/me/two-factor")).json()
    assert status["enabled"] and status["recovery_codes_left"] == 10
    again = await client.get("/account/two-factor")
    assert codes[0] not in again.text and "10 of 10" in again.text
