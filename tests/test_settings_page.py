"""The console's Settings page over HTTP (in process): who may see and change it, CSRF, that a
section's Save sends only what differs, errors beside their fields, and the write-only SMTP
password.

What a browser does with it is in tests/browser/test_settings_page.py."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from tests.conftest import Account, Directory

PASSWORD = "a long and unguessable passphrase"
ORIGIN = {"origin": "http://userdesk.test"}
HTMX = {**ORIGIN, "HX-Request": "true"}
ACCESS = {
    "invitation_expiry_days": "14",
    "lockout_threshold": "10",
    "lockout_minutes": "42",
    "ip_failure_limit": "100",
    "session_idle_minutes": "480",
    "session_max_hours": "168",
}


async def sign_in(client: httpx.AsyncClient, login: str) -> str:
    """Sign in through the console's form; return the CSRF token of the page it lands on."""
    answer = await client.post(
        "/login", data={"login": login, "password": PASSWORD, "next": "/account"}, headers=ORIGIN
    )
    assert answer.status_code == 303, answer.text
    page = await client.get(answer.headers["location"], follow_redirects=True)
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, page.text
    return found.group(1)


@pytest.fixture
async def admin(directory: Directory) -> Account:
    return await directory.account("ada", roles=["admin"], password=PASSWORD)


async def settings_of(client: httpx.AsyncClient, owner: Account) -> dict[str, object]:
    answer = await client.get("/api/v1/settings", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


async def test_only_settings_managers_see_or_change_settings(
    client: httpx.AsyncClient, directory: Directory, owner: Account
) -> None:
    await directory.account("uma", roles=["user-manager"], password=PASSWORD)
    csrf = await sign_in(client, "uma")
    page = await client.get("/settings")
    assert page.status_code == 403
    assert "Not allowed" in page.text and 'name="seat_limit"' not in page.text
    refused = await client.post(
        "/settings/workspace",
        data={"csrf_token": csrf, "name": "Taken over", "seat_limit": ""},
        headers=HTMX,
    )
    assert refused.status_code == 403
    assert (await settings_of(client, owner))["name"] != "Taken over"


async def test_a_change_needs_the_csrf_token_and_our_origin(
    client: httpx.AsyncClient, admin: Account, owner: Account
) -> None:
    csrf = await sign_in(client, "ada")
    before = await settings_of(client, owner)
    for data, headers in (
        ({"name": "Forged"}, ORIGIN),
        ({"name": "Forged", "csrf_token": "not-the-token"}, ORIGIN),
        ({"name": "Forged", "csrf_token": csrf}, {"origin": "https://evil.example"}),
    ):
        answer = await client.post("/settings/workspace", data=data, headers=headers)
        assert answer.status_code == 403, answer.text
    test_email = await client.post("/settings/email/test", data={"to": "x@example.com"})
    assert test_email.status_code == 403
    assert await settings_of(client, owner) == before


async def test_a_section_saves_only_what_differs_in_it(
    client: httpx.AsyncClient, admin: Account, owner: Account
) -> None:
    csrf = await sign_in(client, "ada")
    page = await client.get("/settings")
    assert page.status_code == 200
    for section in ("workspace", "email", "password", "access"):
        assert f'hx-post="/settings/{section}"' in page.text
    # Someone else changes a setting of another section after the page was loaded.
    changed = await client.patch(
        "/api/v1/settings", json={"lockout_minutes": 42}, headers=owner.headers
    )
    assert changed.status_code == 200
    saved = await client.post(
        "/settings/workspace",
        data={"csrf_token": csrf, "name": "Acme People", "seat_limit": "250"},
        headers=HTMX,
    )
    assert saved.status_code == 200, saved.text
    assert 'id="settings-workspace"' in saved.text and "Workspace settings saved." in saved.text
    assert 'hx-swap-oob="innerHTML:.topbar .brand">Acme People<' in saved.text
    after = await settings_of(client, owner)
    assert (after["name"], after["seat_limit"], after["lockout_minutes"]) == (
        "Acme People",
        250,
        42,
    )

    again = await client.post(
        "/settings/workspace",
        data={"csrf_token": csrf, "name": "Acme People", "seat_limit": ""},
        headers=HTMX,
    )
    assert again.status_code == 200
    assert (await settings_of(client, owner))["seat_limit"] is None

    # A plain form post (no htmx) goes back to the page.
    plain = await client.post(
        "/settings/access",
        data={"csrf_token": csrf, **ACCESS, "two_factor_required_roles": ["guest", "user-manager"]},
        headers=ORIGIN,
    )
    assert plain.status_code == 303 and plain.headers["location"] == "/settings#settings-access"
    after = await settings_of(client, owner)
    assert after["invitation_expiry_days"] == 14
    assert after["two_factor_required_roles"] == ["guest", "user-manager"]


async def test_refusals_come_back_beside_their_fields_and_change_nothing(
    client: httpx.AsyncClient, admin: Account, owner: Account
) -> None:
    csrf = await sign_in(client, "ada")
    before = await settings_of(client, owner)
    for section, data, field in (
        ("workspace", {"name": "Acme", "seat_limit": "-1"}, "seat_limit"),
        ("workspace", {"name": "Acme", "seat_limit": "lots"}, "seat_limit"),
        ("workspace", {"name": "Acme", "seat_limit": "0"}, "seat_limit"),  # below the seats used
        ("workspace", {"name": "", "seat_limit": ""}, "name"),
        ("email", {"smtp_host": "bad host", "smtp_security": "tls"}, "smtp_host"),
        ("email", {"mail_from_address": "nope", "mail_max_attempts": "8"}, "mail_from_address"),
        ("email", {"smtp_security": "ssl3", "mail_max_attempts": "8"}, "smtp_security"),
        ("password", {"password_min_length": "7", "password_max_length": "128"}, "min_length"),
        ("access", {**ACCESS, "two_factor_required_roles": "nobody"}, "two_factor_required_roles"),
    ):
        field = field if field != "min_length" else "password_min_length"
        answer = await client.post(
            f"/settings/{section}", data={"csrf_token": csrf, **data}, headers=HTMX
        )
        assert answer.status_code == 422, (section, data, answer.text)
        error = re.search(rf'<p class="field-error" id="error-{field}">([^<]+)</p>', answer.text)
        assert error, (field, answer.text)
        assert f'id="setting-{field}"' in answer.text or field == "two_factor_required_roles"
        assert "Nothing was saved" in answer.text
    # What was typed is kept.
    kept = await client.post(
        "/settings/workspace",
        data={"csrf_token": csrf, "name": "Typed name", "seat_limit": "-1"},
        headers=HTMX,
    )
    assert 'value="Typed name"' in kept.text and 'value="-1"' in kept.text
    assert await settings_of(client, owner) == before


async def test_the_smtp_password_is_never_shown(
    client: httpx.AsyncClient, admin: Account, owner: Account
) -> None:
    csrf = await sign_in(client, "ada")
    secret = "smtp-Secret-7Qx"
    email = {
        "csrf_token": csrf,
        "smtp_host": "mail.example.com",
        "smtp_port": "587",
        "smtp_security": "starttls",
        "smtp_username": "desk",
        "mail_from_address": "desk@example.com",
        "mail_from_name": "",
        "mail_max_attempts": "8",
    }
    saved = await client.post(
        "/settings/email", data={**email, "smtp_password": secret}, headers=HTMX
    )
    assert saved.status_code == 200, saved.text
    assert secret not in saved.text and "A password is stored" in saved.text
    page = await client.get("/settings")
    assert secret not in page.text and "A password is stored" in page.text
    assert 'id="mail-banner"' not in page.text
    # An empty password field keeps it; the checkbox removes it.
    await client.post("/settings/email", data={**email, "smtp_password": ""}, headers=HTMX)
    assert (await settings_of(client, owner))["smtp_password_set"] is True
    await client.post(
        "/settings/email",
        data={**email, "smtp_password": "", "remove_smtp_password": "on"},
        headers=HTMX,
    )
    assert (await settings_of(client, owner))["smtp_password_set"] is False


async def test_a_field_left_alone_keeps_a_change_made_meanwhile(
    client: httpx.AsyncClient, admin: Account, owner: Account
) -> None:
    """The form says what it showed; a Save changes only what was typed over that, so the
    2FA requirement someone set while the page was open is not silently undone."""
    csrf = await sign_in(client, "ada")
    page = await client.get("/settings")
    form = page.text.split('id="settings-access"', 1)[1].split("</form>", 1)[0]
    shown = re.search(r'name="shown" value="([^"]+)"', form)
    assert shown, form
    fields: dict[str, Any] = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="(\w+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if not name or name.group(1) in ("csrf_token", "shown"):
            continue
        if 'type="checkbox"' in tag:
            if " checked" in tag:
                fields.setdefault(name.group(1), []).append(value.group(1) if value else "on")
            continue
        fields[name.group(1)] = value.group(1) if value else ""
    changed = await client.patch(
        "/api/v1/settings",
        json={"two_factor_required_roles": ["guest"], "invitation_expiry_days": 3},
        headers=owner.headers,
    )
    assert changed.status_code == 200
    # The access form posted as shown, with only the lockout minutes typed over.
    fields["lockout_minutes"] = "30"
    saved = await client.post(
        "/settings/access",
        data={"csrf_token": csrf, "shown": html.unescape(shown.group(1)), **fields},
        headers=HTMX,
    )
    assert saved.status_code == 200, saved.text
    after = await settings_of(client, owner)
    assert after["lockout_minutes"] == 30
    assert after["two_factor_required_roles"] == ["guest"]
    assert after["invitation_expiry_days"] == 3
