"""TOTP two-factor authentication: enrolment, sign-in with codes, recovery codes, disabling,
roles that require it, and the administrators' reset."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
from sqlalchemy import select

from tests.conftest import (
    TEST_SETTINGS,
    Account,
    Directory,
    ShiftableClock,
    mint_token,
    queued_emails,
)
from tests.processes import Cli
from userdesk.config import Settings
from userdesk.db import Database
from userdesk.http.app import create_app
from userdesk.models import AuditEntry, RecoveryCode, User
from userdesk.security.sealing import Sealer

PASSWORD = "a long enough passphrase"
RECOVERY_CODE = re.compile(r"^[a-z2-9]{4}(-[a-z2-9]{4}){3}$")


async def _login(client: httpx.AsyncClient, login: str, code: str | None = None) -> httpx.Response:
    body = {"login": login, "password": PASSWORD}
    if code is not None:
        body["code"] = code
    return await client.post("/api/v1/auth/login", json=body)


async def _signed_in(client: httpx.AsyncClient, login: str, code: str | None = None) -> None:
    client.cookies.clear()
    response = await _login(client, login, code)
    assert response.status_code == 200, response.text


def _code(secret: str, clock: ShiftableClock) -> str:
    return pyotp.TOTP(secret).at(clock.now())


async def _enrol(
    client: httpx.AsyncClient, clock: ShiftableClock, headers: dict[str, str] | None = None
) -> tuple[str, list[str], str]:
    """Set up and confirm 2FA for whoever `client` (or `headers`) signs in as; returns the
    secret, the recovery codes and the code that confirmed it."""
    setup = await client.post(
        "/api/v1/me/two-factor/setup", json={"password": PASSWORD}, headers=headers
    )
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    code = _code(secret, clock)
    confirmed = await client.post(
        "/api/v1/me/two-factor/confirm", json={"code": code}, headers=headers
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"], code


async def _status(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = await client.get("/api/v1/me/two-factor", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _audit(client: httpx.AsyncClient, owner: Account, action: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params={"action": action}, headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def _stored(database: Database, username: str) -> tuple[User, list[RecoveryCode]]:
    async with database.reader() as session:
        user = await session.scalar(select(User).where(User.username == username))
        assert user is not None
        codes = (
            await session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id))
        ).all()
        return user, list(codes)


def _field_error(response: httpx.Response, field: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == field, error
    return error


async def test_enrolment_turns_on_2fa_and_sign_in_then_needs_a_fresh_code(
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    database: Database,
    clock: ShiftableClock,
) -> None:
    user = await directory.create("tia", password=PASSWORD)
    await _signed_in(client, "tia")
    assert await _status(client) == {
        "enabled": False,
        "enabled_at": None,
        "recovery_codes_left": 0,
        "required": False,
    }

    wrong = await client.post("/api/v1/me/two-factor/setup", json={"password": "not it at all"})
    assert _field_error(wrong, "password")["code"] == "wrong_password"
    early = await client.post("/api/v1/me/two-factor/confirm", json={"code": "123456"})
    assert early.status_code == 409 and "setup" in early.json()["detail"]

    setup = await client.post("/api/v1/me/two-factor/setup", json={"password": PASSWORD})
    assert setup.status_code == 200, setup.text
    assert setup.headers["cache-control"] == "no-store"
    secret = setup.json()["secret"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    uri = setup.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri and "tia" in uri
    assert setup.json()["qr_svg"].startswith("<svg")
    stored, _ = await _stored(database, "tia")
    assert stored.totp_pending_secret is not None and secret not in stored.totp_pending_secret
    assert stored.totp_secret is None

    off_by_ten_minutes = pyotp.TOTP(secret).at(clock.now() + timedelta(minutes=10))
    refused = await client.post("/api/v1/me/two-factor/confirm", json={"code": off_by_ten_minutes})
    assert _field_error(refused, "code")["code"] == "wrong_code"
    assert (await _status(client))["enabled"] is False

    code = _code(secret, clock)
    confirmed = await client.post("/api/v1/me/two-factor/confirm", json={"code": code})
    assert confirmed.status_code == 200, confirmed.text
    recovery_codes = confirmed.json()["recovery_codes"]
    assert len(recovery_codes) == 10 == len(set(recovery_codes))
    assert all(RECOVERY_CODE.match(c) for c in recovery_codes)
    status = await _status(client)
    assert status["enabled"] is True and status["enabled_at"] is not None
    assert status["recovery_codes_left"] == 10
    assert (await client.get("/api/v1/me")).json()["two_factor_enabled"] is True
    again = await client.post("/api/v1/me/two-factor/setup", json={"password": PASSWORD})
    assert again.status_code == 409

    # The secret and the codes are stored sealed and hashed, never in clear.
    stored, rows = await _stored(database, "tia")
    assert stored.totp_secret is not None and stored.totp_secret.startswith("sealed:v1:")
    assert secret not in stored.totp_secret and stored.totp_pending_secret is None
    assert len(rows) == 10
    assert not {r.digest for r in rows} & {c.replace("-", "") for c in recovery_codes}
    assert not any(c.replace("-", "") in r.digest for c in recovery_codes for r in rows)

    client.cookies.clear()
    needed = await _login(client, "tia")
    assert (needed.status_code, needed.json()["code"]) == (401, "two_factor_required")
    assert "set-cookie" not in needed.headers
    replayed = await _login(client, "tia", code)
    assert (replayed.status_code, replayed.json()["code"]) == (401, "two_factor_required")
    clock.advance(timedelta(seconds=30))
    fresh = _code(secret, clock)
    assert (await _login(client, "tia", fresh)).status_code == 200
    assert (await client.get("/api/v1/me")).json()["id"] == user["id"]
    client.cookies.clear()
    assert (await _login(client, "tia", fresh)).status_code == 401

    [enabled] = await _audit(client, owner, "user.two_factor_enabled")
    assert enabled["target"]["id"] == user["id"] and enabled["actor"]["id"] == user["id"]
    assert enabled["changes"]["two_factor_enabled"] == {"before": False, "after": True}
    async with database.reader() as session:
        entries = (await session.scalars(select(AuditEntry))).all()
    logged = str([(e.action, e.changes) for e in entries])
    assert secret not in logged and code not in logged and fresh not in logged
    assert not any(c in logged for c in recovery_codes)


async def test_recovery_codes_work_once_and_regenerating_kills_the_old_ones(
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    database: Database,
    clock: ShiftableClock,
) -> None:
    await directory.create("reo", password=PASSWORD)
    await _signed_in(client, "reo")
    _, codes, _ = await _enrol(client, clock)

    await _signed_in(client, "reo", codes[0])
    # Typed the way people type them: capitals, no dashes.
    await _signed_in(client, "reo", codes[1].upper().replace("-", ""))
    client.cookies.clear()
    spent = await _login(client, "reo", codes[0])
    assert (spent.status_code, spent.json()["code"]) == (401, "two_factor_required")
    await _signed_in(client, "reo", codes[2])
    assert (await _status(client))["recovery_codes_left"] == 7

    wrong = await client.post(
        "/api/v1/me/two-factor/recovery-codes", json={"password": "nope", "code": codes[3]}
    )
    assert _field_error(wrong, "password")["code"] == "wrong_password"
    # The password alone is not enough: a code too, so a stolen session and password cannot
    # mint a lasting way past the second factor.
    no_code = await client.post(
        "/api/v1/me/two-factor/recovery-codes", json={"password": PASSWORD, "code": "000000"}
    )
    assert _field_error(no_code, "code")["code"] == "wrong_code"
    regenerated = await client.post(
        "/api/v1/me/two-factor/recovery-codes", json={"password": PASSWORD, "code": codes[4]}
    )
    assert regenerated.status_code == 200, regenerated.text
    assert regenerated.headers["cache-control"] == "no-store"
    new_codes = regenerated.json()["recovery_codes"]
    assert len(new_codes) == 10 and not set(new_codes) & set(codes)
    assert (await _status(client))["recovery_codes_left"] == 10
    _, rows = await _stored(database, "reo")
    assert len(rows) == 10 and all(r.used_at is None for r in rows)

    client.cookies.clear()
    assert (await _login(client, "reo", codes[5])).status_code == 401
    changes = [e["context"]["change"] for e in await queued_emails(database, "two_factor_changed")]
    assert changes == ["enabled", "recovery_codes_regenerated"]
    await _signed_in(client, "reo", new_codes[0])
    [entry] = await _audit(client, owner, "user.recovery_codes_regenerated")
    assert entry["target"]["name"] == "reo"
    assert entry["changes"] == {"recovery_codes": {"changed": True}}


async def test_disabling_needs_the_password_and_an_unused_code(
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    database: Database,
    clock: ShiftableClock,
) -> None:
    dora = await directory.account("dora", password=PASSWORD)
    # Through a bearer token this time: enrolment works with either.
    secret, codes, confirming_code = await _enrol(client, clock, dora.headers)
    assert (await _status(client, dora.headers))["enabled"] is True

    url = "/api/v1/me/two-factor/disable"
    wrong_password = await client.post(
        url, json={"password": "wrong", "code": _code(secret, clock)}, headers=dora.headers
    )
    assert _field_error(wrong_password, "password")["code"] == "wrong_password"
    replayed = await client.post(
        url, json={"password": PASSWORD, "code": confirming_code}, headers=dora.headers
    )
    assert _field_error(replayed, "code")["code"] == "wrong_code"
    missing = await client.post(url, json={"password": PASSWORD}, headers=dora.headers)
    assert _field_error(missing, "code")["code"] == "missing"
    assert (await _status(client, dora.headers))["enabled"] is True

    clock.advance(timedelta(seconds=30))
    disabled = await client.post(
        url, json={"password": PASSWORD, "code": _code(secret, clock)}, headers=dora.headers
    )
    assert disabled.status_code == 200, disabled.text
    assert disabled.json() == {
        "enabled": False,
        "enabled_at": None,
        "recovery_codes_left": 0,
        "required": False,
    }
    stored, rows = await _stored(database, "dora")
    assert (stored.totp_secret, stored.totp_enabled_at, rows) == (None, None, [])
    await _signed_in(client, "dora")
    again = await client.post(url, json={"password": PASSWORD, "code": codes[0]})
    assert again.status_code == 409

    [entry] = await _audit(client, owner, "user.two_factor_disabled")
    assert entry["target"]["id"] == dora.id
    assert entry["changes"] == {"two_factor_enabled": {"before": True, "after": False}}


async def test_a_role_that_requires_2fa_blocks_everything_but_enrolling(
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    database: Database,
    clock: ShiftableClock,
) -> None:
    required = await client.patch(
        "/api/v1/settings", json={"two_factor_required_roles": ["admin"]}, headers=owner.headers
    )
    assert required.status_code == 200, required.text
    ada = await directory.account("ada", roles=["admin"], password=PASSWORD)
    bot = await directory.account("botty", roles=["admin"], type="bot")
    await _signed_in(client, "ada")

    by_cookie = await client.get("/api/v1/users")
    by_token = await client.get("/api/v1/users", headers=ada.headers)
    for refused in (by_cookie, by_token):
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "two_factor_enrolment_required"
        assert "/api/v1/me/two-factor/setup" in refused.json()["detail"]
    assert (await client.get("/api/v1/me")).status_code == 200
    status = await _status(client)
    assert (status["enabled"], status["required"]) == (False, True)
    # Neither the owner (a role not listed) nor a bot (nobody to hold an authenticator) is held.
    assert (await client.get("/api/v1/users", headers=owner.headers)).status_code == 200
    assert (await client.get("/api/v1/users", headers=bot.headers)).status_code == 200

    secret, _, _ = await _enrol(client, clock)
    assert (await client.get("/api/v1/users")).status_code == 200
    assert (await client.get("/api/v1/users", headers=ada.headers)).status_code == 200

    clock.advance(timedelta(seconds=30))
    kept = await client.post(
        "/api/v1/me/two-factor/disable",
        json={"password": PASSWORD, "code": _code(secret, clock)},
    )
    assert kept.status_code == 409, kept.text
    assert "admin" in kept.json()["detail"]
    assert "two_factor_required_roles" in kept.json()["detail"]
    assert (await _status(client))["enabled"] is True

    # Someone who must enrol may still change their password and sign out, nothing else.
    await client.patch(
        "/api/v1/settings", json={"two_factor_required_roles": ["user"]}, headers=owner.headers
    )
    uli = await directory.create("uli", password=PASSWORD, roles=["user"])
    await _signed_in(client, "uli")
    own_profile = await client.patch(f"/api/v1/users/{uli['id']}", json={"name": "Uli U"})
    assert own_profile.json()["code"] == "two_factor_enrolment_required", own_profile.text
    changed = await client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "another long passphrase"},
    )
    assert changed.status_code == 200, changed.text
    assert (await client.post("/api/v1/auth/logout")).status_code == 204
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_admin_reset_removes_2fa_and_ends_every_session_and_token(
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    database: Database,
    clock: ShiftableClock,
) -> None:
    rita = await directory.account("rita", password=PASSWORD)
    adam = await directory.account("adam", roles=["admin"])
    pete = await directory.account("pete")

    def reset(user_id: str, by: Account) -> Any:
        return client.post(f"/api/v1/users/{user_id}/two-factor/reset", headers=by.headers)

    not_on = await reset(rita.id, owner)
    assert (not_on.status_code, not_on.json()["code"]) == (409, "conflict")
    assert "no two-factor" in not_on.json()["detail"]

    await _signed_in(client, "rita")
    await _enrol(client, clock)
    assert (await client.get("/api/v1/me", headers=rita.headers)).status_code == 200

    by_plain_user = await reset(rita.id, pete)
    assert (by_plain_user.status_code, by_plain_user.json()["permission"]) == (
        403,
        "users.reset_credentials",
    )
    on_an_owner = await reset(owner.id, adam)
    assert (on_an_owner.status_code, on_an_owner.json()["permission"]) == (403, "owners.manage")
    assert await queued_emails(database, "two_factor_reset") == []

    done = await reset(rita.id, adam)
    assert done.status_code == 200, done.text
    assert done.json()["id"] == rita.id and done.json()["two_factor_enabled"] is False
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get("/api/v1/me", headers=rita.headers)).status_code == 401
    stored, rows = await _stored(database, "rita")
    assert (stored.totp_secret, stored.totp_enabled_at, rows) == (None, None, [])
    [email] = await queued_emails(database, "two_factor_reset")
    assert email["to"] == "rita@example.com"
    assert email["context"] == {"user_id": rita.id, "name": "Rita", "username": "rita"}

    [entry] = await _audit(client, owner, "user.two_factor_reset")
    assert (entry["actor"]["name"], entry["target"]["id"]) == ("adam", rita.id)
    assert entry["changes"]["two_factor_enabled"] == {"before": True, "after": False}
    assert entry["changes"]["sessions"] == {"before": 1, "after": 0}

    # The password alone signs in again; a second reset has nothing to reset.
    await _signed_in(client, "rita")
    assert (await reset(rita.id, adam)).status_code == 409


async def test_bad_input_names_the_field(client: httpx.AsyncClient, owner: Account) -> None:
    for path, body, field in (
        ("setup", {}, "password"),
        ("setup", {"password": ""}, "password"),
        ("setup", {"password": PASSWORD, "extra": 1}, "extra"),
        ("confirm", {"code": "   "}, "code"),
        ("confirm", {"code": 123456}, "code"),
        ("recovery-codes", {"password": None, "code": "123456"}, "password"),
        ("disable", {"password": PASSWORD, "code": "x" * 65}, "code"),
    ):
        response = await client.post(
            f"/api/v1/me/two-factor/{path}", json=body, headers=owner.headers
        )
        assert response.status_code == 422, (path, body, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field], response.text


async def test_cli_resets_2fa(
    client: httpx.AsyncClient,
    directory: Directory,
    database: Database,
    database_url: str,
    clock: ShiftableClock,
    tmp_path: Path,
) -> None:
    await directory.create("cleo", password=PASSWORD)
    token = await mint_token(database, "cleo")
    await _signed_in(client, "cleo")
    await _enrol(client, clock)
    cli = Cli(database_url, tmp_path)

    assert cli("users", "reset-2fa", "cleo").ok().stdout == "reset 2FA of cleo\n"
    stored, rows = await _stored(database, "cleo")
    assert (stored.totp_secret, rows) == (None, [])
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/me", headers=bearer)).status_code == 401
    assert len(await queued_emails(database, "two_factor_reset")) == 1
    cli("users", "reset-2fa", "cleo").fails(6, "no two-factor")


async def test_a_changed_server_key_is_a_clear_503_not_a_crash(
    client: httpx.AsyncClient,
    database_url: str,
    directory: Directory,
    clock: ShiftableClock,
) -> None:
    await directory.create("kay", password=PASSWORD)
    await _signed_in(client, "kay")
    secret, _, _ = await _enrol(client, clock)
    clock.advance(timedelta(seconds=30))
    other_key = Database(
        database_url, replace(directory.database.services, sealer=Sealer("another key"))
    )
    app = create_app(Settings(database_url=database_url, **TEST_SETTINGS), database=other_key)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://userdesk.test"
    ) as elsewhere:
        response = await _login(elsewhere, "kay", _code(secret, clock))
    await other_key.dispose()
    assert response.status_code == 503
    assert response.json()["code"] == "secret_key_mismatch"
    assert secret not in response.text


async def test_renaming_or_deleting_a_role_keeps_the_2fa_requirement_on_the_same_roles(
    client: httpx.AsyncClient, owner: Account
) -> None:
    h = owner.headers
    created = await client.post(
        "/api/v1/roles", json={"name": "ops", "permissions": ["users.read"]}, headers=h
    )
    assert created.status_code == 201, created.text
    await client.post("/api/v1/roles", json={"name": "temp"}, headers=h)
    await client.patch(
        "/api/v1/settings", json={"two_factor_required_roles": ["ops", "temp", "admin"]}, headers=h
    )
    renamed = await client.patch("/api/v1/roles/ops", json={"name": "operators"}, headers=h)
    assert renamed.status_code == 200, renamed.text
    settings = (await client.get("/api/v1/settings", headers=h)).json()
    assert settings["two_factor_required_roles"] == ["admin", "operators", "temp"]
    assert (await client.delete("/api/v1/roles/temp", headers=h)).status_code == 204
    settings = (await client.get("/api/v1/settings", headers=h)).json()
    assert settings["two_factor_required_roles"] == ["admin", "operators"]
    [entry] = await _audit(client, owner, "role.updated")
    assert entry["changes"]["two_factor_required_roles"]["after"] == [
        "admin",
        "operators",
        "temp",
    ]
