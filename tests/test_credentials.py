"""The password policy and its live check, the admin's password reset, and E2EE keys."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import Account, Directory, queued_emails
from userdesk.db import Database

PASSWORD = "a long enough passphrase"


async def _login(client: httpx.AsyncClient, login: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"login": login, "password": password})


def _rules(response: httpx.Response) -> dict[str, bool]:
    assert response.status_code == 200, response.text
    return {r["rule"]: r["passed"] for r in response.json()["rules"]}


def _codes(response: httpx.Response) -> set[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return {(e["field"], e["code"]) for e in response.json()["errors"]}


# --- the policy -------------------------------------------------------------------------


async def test_the_default_policy_and_its_check_judge_each_rule(client: httpx.AsyncClient) -> None:
    policy = await client.get("/api/v1/password-policy")
    assert policy.json() == {
        "min_length": 12,
        "max_length": 128,
        "max_repeated": None,
        "require_lowercase": False,
        "require_uppercase": False,
        "require_digit": False,
        "require_symbol": False,
        "reject_common": True,
        "reject_personal": True,
    }
    check = "/api/v1/password-policy/check"
    good = await client.post(check, json={"password": "violet staple orbit"})
    assert good.json()["ok"] is True
    assert _rules(good) == {
        "min_length": True,
        "max_length": True,
        "common": True,
        "personal": True,
    }
    short = await client.post(check, json={"password": "qwerty"})
    assert short.json()["ok"] is False
    assert _rules(short) == {
        "min_length": False,
        "max_length": True,
        "common": False,
        "personal": True,
    }
    # Common words with digits and symbols around them are still common.
    assert not _rules(await client.post(check, json={"password": "Password123456!"}))["common"]
    mine = await client.post(
        check, json={"password": "hello-mallory-2024", "username": "Mallory", "email": "m@x.org"}
    )
    assert _rules(mine)["personal"] is False
    by_mail = await client.post(
        check, json={"password": "xyz.mallory.smith.99", "email": "Mallory.Smith@x.org"}
    )
    assert _rules(by_mail)["personal"] is False


async def test_policy_settings_change_what_is_accepted_everywhere(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    strict = {
        "password_min_length": 14,
        "password_max_repeated": 2,
        "password_require_lowercase": True,
        "password_require_uppercase": True,
        "password_require_digit": True,
        "password_require_symbol": True,
    }
    changed = await client.patch("/api/v1/settings", json=strict, headers=owner.headers)
    assert changed.status_code == 200, changed.text
    check = await client.post(
        "/api/v1/password-policy/check", json={"password": "aaaa bbbb cccc dddd"}
    )
    assert _rules(check) == {
        "min_length": True,
        "max_length": True,
        "max_repeated": False,
        "lowercase": True,
        "uppercase": False,
        "digit": False,
        "symbol": False,  # spaces are not symbols
        "common": True,
        "personal": True,
    }
    body = {"name": "Zed", "username": "zed", "email": "zed@example.com"}
    refused = await client.post(
        "/api/v1/users", json={**body, "password": "aaaa bbbb cccc dddd"}, headers=owner.headers
    )
    assert {
        ("password", "password_max_repeated"),
        ("password", "password_uppercase"),
        ("password", "password_digit"),
    } <= _codes(refused)
    assert "must meet the policy" in refused.json()["detail"]
    created = await client.post(
        "/api/v1/users", json={**body, "password": "Violet-staple-0rbit"}, headers=owner.headers
    )
    assert created.status_code == 201, created.text
    # Personal data is refused on create, and on edit against the (new) username.
    personal = await client.post(
        "/api/v1/users",
        json={
            "name": "Q",
            "username": "quentin",
            "email": "q@example.com",
            "password": "Quentin-Rocks-2024!",
        },
        headers=owner.headers,
    )
    assert ("password", "password_personal") in _codes(personal)


async def test_policy_settings_are_validated(client: httpx.AsyncClient, owner: Account) -> None:
    for body, field in [
        ({"password_min_length": 6}, "password_min_length"),
        ({"password_max_length": 64}, "password_max_length"),
        ({"password_min_length": None}, "password_min_length"),
        ({"password_max_repeated": 0}, "password_max_repeated"),
        ({"password_require_symbol": "sometimes"}, "password_require_symbol"),
        ({"two_factor_required_roles": ["no-such-role"]}, "two_factor_required_roles"),
        ({"lockout_threshold": 1}, "lockout_threshold"),
    ]:
        response = await client.patch("/api/v1/settings", json=body, headers=owner.headers)
        assert response.status_code == 422, (body, response.text)
        assert field in {e["field"] for e in response.json()["errors"]}, response.text
    off = await client.patch(
        "/api/v1/settings",
        json={"password_max_repeated": 3, "password_reject_common": False},
        headers=owner.headers,
    )
    assert (off.json()["password_max_repeated"], off.json()["password_reject_common"]) == (3, False)
    cleared = await client.patch(
        "/api/v1/settings", json={"password_max_repeated": None}, headers=owner.headers
    )
    assert cleared.json()["password_max_repeated"] is None
    check = await client.post("/api/v1/password-policy/check", json={"password": "password123456"})
    assert "common" not in _rules(check)


async def test_checking_for_an_existing_user_needs_sign_in_and_sight_of_them(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create("gwendolyn")
    body = {"password": "gwendolyn's secret passphrase", "user_id": user["id"]}
    anonymous = await client.post("/api/v1/password-policy/check", json=body)
    assert anonymous.status_code == 401
    as_admin = await client.post("/api/v1/password-policy/check", json=body, headers=owner.headers)
    assert _rules(as_admin)["personal"] is False
    guest = await directory.account("gus", roles=["guest"])
    hidden = await client.post("/api/v1/password-policy/check", json=body, headers=guest.headers)
    assert hidden.status_code == 404
    long = await client.post("/api/v1/password-policy/check", json={"password": "x" * 2000})
    assert long.status_code == 422


# --- the admin's reset -------------------------------------------------------------------


async def test_random_reset_emails_a_sealed_password_that_must_then_be_changed(
    client: httpx.AsyncClient, database: Database, owner: Account, directory: Directory
) -> None:
    user = await directory.account("rosa", password=PASSWORD)
    assert (await _login(client, "rosa")).status_code == 200
    reset = await client.post(
        f"/api/v1/users/{user.id}/password/reset", json={"mode": "random"}, headers=owner.headers
    )
    assert reset.status_code == 200, reset.text
    assert reset.json()["require_password_change"] is True
    # Her session and token ended at once.
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get("/api/v1/me", headers=user.headers)).status_code == 401
    [email] = await queued_emails(database, "random_password")
    assert email["to"] == "rosa@example.com"
    password = email["secrets"]["password"]
    assert len(password) >= 12
    # The queued row holds the password sealed, never in clear.
    async with database.reader() as session:
        payloads = (await session.execute(text("SELECT payload FROM outbox"))).scalars().all()
    assert password not in str(payloads)
    assert (await _login(client, "rosa")).status_code == 401  # the old password is gone
    signed_in = await _login(client, "rosa", password)
    assert signed_in.status_code == 200
    blocked = await client.patch(f"/api/v1/users/{user.id}", json={"bio": "hi"})
    assert blocked.status_code == 403
    assert blocked.json()["code"] == "password_change_required"
    changed = await client.post(
        "/api/v1/me/password",
        json={"current_password": password, "new_password": "her very own passphrase"},
    )
    assert changed.status_code == 200, changed.text
    assert (await client.patch(f"/api/v1/users/{user.id}", json={"bio": "hi"})).status_code == 200
    [entry] = (
        await client.get(
            "/api/v1/audit", params={"action": "user.password_reset"}, headers=owner.headers
        )
    ).json()["items"]
    assert entry["changes"]["password"] == {"changed": True}
    assert entry["changes"]["mode"]["after"] == "random"
    assert password not in str(entry)


async def test_manual_reset_is_policy_checked_with_an_optional_required_change(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create("mona", password=PASSWORD)
    url = f"/api/v1/users/{user['id']}/password/reset"
    for body, expected in [
        ({"mode": "manual"}, ("password", "required")),
        ({"mode": "manual", "password": "monkey123456"}, ("password", "password_common")),
        ({"mode": "manual", "password": "mona mona mona mona"}, ("password", "password_personal")),
        ({"mode": "random", "password": "violet staple orbit"}, ("password", "not_allowed")),
        ({"mode": "sideways"}, ("mode", "literal_error")),
    ]:
        response = await client.post(url, json=body, headers=owner.headers)
        assert expected in _codes(response), (body, response.text)
    chosen = "violet staple orbit"
    done = await client.post(
        url,
        json={"mode": "manual", "password": chosen, "require_password_change": False},
        headers=owner.headers,
    )
    assert done.status_code == 200
    assert done.json()["require_password_change"] is False
    assert (await _login(client, "mona", chosen)).status_code == 200
    # Nothing to change first: she edits her profile at once.
    edit = await client.patch(f"/api/v1/users/{user['id']}", json={"bio": "hello"})
    assert edit.status_code == 200
    again = await client.post(
        url, json={"mode": "manual", "password": "another good passphrase"}, headers=owner.headers
    )
    assert again.json()["require_password_change"] is True  # the switch defaults to on


@pytest.mark.parametrize("role", ["user", "user-manager"])
async def test_resets_follow_the_rules_of_who_may_act_on_whom(
    client: httpx.AsyncClient, owner: Account, directory: Directory, role: str
) -> None:
    actor = await directory.account("actor", roles=[role])
    admin = await directory.create("adam", roles=["admin"], password=PASSWORD)
    refused = await client.post(
        f"/api/v1/users/{admin['id']}/password/reset",
        json={"mode": "random"},
        headers=actor.headers,
    )
    assert refused.status_code == 403
    assert (await _login(client, "adam")).status_code == 200  # unchanged


# --- E2EE keys ---------------------------------------------------------------------------


async def test_e2e_keys_are_stored_shared_publicly_and_reset_by_an_admin(
    client: httpx.AsyncClient, database: Database, owner: Account, directory: Directory
) -> None:
    user = await directory.account("eli", password=PASSWORD)
    other = await directory.account("ona")
    assert (await client.get("/api/v1/me/e2e-keys", headers=user.headers)).status_code == 404
    no_keys = await client.post(f"/api/v1/users/{user.id}/e2e-keys/reset", headers=owner.headers)
    assert no_keys.status_code == 409
    keys: dict[str, Any] = {"public_key": '{"kty":"RSA","n":"abc"}', "private_key": "enc:Zm9v"}
    stored = await client.put("/api/v1/me/e2e-keys", json=keys, headers=user.headers)
    assert stored.status_code == 200, stored.text
    assert {k: stored.json()[k] for k in keys} == keys
    public = await client.get(f"/api/v1/users/{user.id}/e2e-keys/public", headers=other.headers)
    assert public.json()["public_key"] == keys["public_key"]
    assert "private_key" not in public.json()
    shown = await client.get(f"/api/v1/users/{user.id}", headers=owner.headers)
    assert shown.json()["e2e_keys"] is True
    bad = await client.put(
        "/api/v1/me/e2e-keys", json={"public_key": "", "private_key": "x"}, headers=user.headers
    )
    assert ("public_key", "required") in _codes(bad)

    assert (await _login(client, "eli")).status_code == 200
    refused = await client.post(f"/api/v1/users/{user.id}/e2e-keys/reset", headers=other.headers)
    assert refused.status_code == 403
    reset = await client.post(f"/api/v1/users/{user.id}/e2e-keys/reset", headers=owner.headers)
    assert reset.status_code == 200
    assert reset.json()["e2e_keys"] is False
    assert (await client.get("/api/v1/me")).status_code == 401  # signed out everywhere
    assert (await client.get("/api/v1/me", headers=user.headers)).status_code == 401
    async with database.reader() as session:
        left = (await session.execute(text("SELECT count(*) FROM e2e_keys"))).scalar()
    assert left == 0
    assert [e["to"] for e in await queued_emails(database, "e2e_keys_reset")] == ["eli@example.com"]
    actions = [
        e["action"]
        for e in (await client.get("/api/v1/audit", headers=owner.headers)).json()["items"]
    ]
    assert "user.e2e_keys_set" in actions and "user.e2e_keys_reset" in actions


async def test_users_are_told_when_their_password_changes(
    client: httpx.AsyncClient, database: Database, owner: Account, directory: Directory
) -> None:
    user = await directory.create("nina", password=PASSWORD)
    await _login(client, "nina")
    own = await client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "a newer passphrase of hers"},
    )
    assert own.status_code == 200
    await client.post(
        f"/api/v1/users/{user['id']}/password/reset",
        json={"mode": "manual", "password": "set by the admin here"},
        headers=owner.headers,
    )
    notices = await queued_emails(database, "password_changed")
    assert [(n["to"], n["context"]["by"]) for n in notices] == [
        ("nina@example.com", "you"),
        ("nina@example.com", "an administrator"),
    ]
