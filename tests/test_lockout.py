"""Brute force: growing delays, a temporary lockout, a cap per address, and the admin's unlock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text

from tests.conftest import Account, Directory, ShiftableClock, queued_emails
from userdesk.config import Settings
from userdesk.db import Database
from userdesk.http.app import create_app

PASSWORD = "a long enough passphrase"
WRONG = "not the passphrase at all"


async def _login(client: httpx.AsyncClient, login: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"login": login, "password": password})


async def _fail(
    client: httpx.AsyncClient, login: str, clock: ShiftableClock, times: int
) -> list[int]:
    """`times` wrong passwords, each after waiting out any delay; the status codes."""
    codes = []
    for _ in range(times):
        response = await _login(client, login, WRONG)
        codes.append(response.status_code)
        clock.advance(timedelta(seconds=31))
    return codes


async def _audit(client: httpx.AsyncClient, owner: Account, action: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params={"action": action}, headers=owner.headers)
    return response.json()["items"]


async def test_delays_grow_after_three_failures_and_say_when_to_retry(
    client: httpx.AsyncClient, directory: Directory, clock: ShiftableClock
) -> None:
    await directory.create("dana", password=PASSWORD)
    for _ in range(3):
        assert (await _login(client, "dana", WRONG)).status_code == 401
    # Right after the third failure, even the right password waits.
    waiting = await _login(client, "dana")
    assert waiting.status_code == 429
    assert waiting.headers["content-type"] == "application/problem+json"
    assert waiting.json()["code"] == "too_many_attempts"
    assert waiting.headers["Retry-After"] == "1"
    assert waiting.json()["retry_after"] == 1
    clock.advance(timedelta(seconds=1))
    assert (await _login(client, "dana", WRONG)).status_code == 401
    assert (await _login(client, "dana")).headers["Retry-After"] == "2"  # the delay doubled
    clock.advance(timedelta(seconds=2))
    assert (await _login(client, "dana")).status_code == 200  # success clears the count
    assert (await _login(client, "dana", WRONG)).status_code == 401
    assert (await _login(client, "dana", WRONG)).status_code == 401
    assert (await _login(client, "dana")).status_code == 200


async def test_lockout_after_the_threshold_ends_by_itself_or_by_an_admin(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    clock: ShiftableClock,
) -> None:
    await client.patch(
        "/api/v1/settings",
        json={"lockout_threshold": 5, "lockout_minutes": 10},
        headers=owner.headers,
    )
    user = await directory.create("lou", password=PASSWORD)
    assert await _fail(client, "lou", clock, 5) == [401] * 5
    # Locked: even the right password gets the answer of a wrong one (nothing to tell an
    # attacker), by username and by email alike; the user learns why by email.
    for login in ("lou", "LOU@example.com"):
        locked = await _login(client, login)
        assert locked.status_code == 401
        assert locked.json()["detail"] == "wrong username, email or password"
    [notice] = await queued_emails(database, "account_locked")
    assert notice["to"] == "lou@example.com" and notice["context"]["failures"] == 5
    status = await client.get(f"/api/v1/users/{user['id']}/lockout", headers=owner.headers)
    assert status.json()["locked"] is True and status.json()["failures"] == 5
    [entry] = await _audit(client, owner, "auth.account_locked")
    assert entry["target"]["name"] == "lou"
    reasons = [
        e["changes"]["reason"]["after"] for e in await _audit(client, owner, "auth.sign_in_failed")
    ]
    assert reasons.count("locked") == 2

    clock.advance(timedelta(minutes=10))  # the lockout runs out
    assert (await _login(client, "lou")).status_code == 200

    assert await _fail(client, "lou", clock, 5) == [401] * 5
    assert (await _login(client, "lou")).status_code == 401
    unlocked = await client.post(f"/api/v1/users/{user['id']}/unlock", headers=owner.headers)
    assert unlocked.status_code == 200
    assert unlocked.json() == {"locked": False, "locked_until": None, "failures": 0}
    assert (await _login(client, "lou")).status_code == 200
    [unlock_entry] = await _audit(client, owner, "auth.account_unlocked")
    assert unlock_entry["actor"]["name"] == "olive"
    assert unlock_entry["changes"]["locked"] == {"before": True, "after": False}


async def test_switching_between_username_and_email_neither_escapes_the_lockout_nor_reveals_it(
    client: httpx.AsyncClient, owner: Account, directory: Directory, clock: ShiftableClock
) -> None:
    await client.patch("/api/v1/settings", json={"lockout_threshold": 4}, headers=owner.headers)
    await directory.create("tess", password=PASSWORD)
    # Delays belong to the name typed: three failures as "tess" delay "tess" only...
    for _ in range(3):
        assert (await _login(client, "tess", WRONG)).status_code == 401
    assert (await _login(client, "tess", WRONG)).status_code == 429
    other_name = await _login(client, "tess@example.com", WRONG)
    unknown_name = await _login(client, "nobody@example.com", WRONG)
    # ...so the email, and an address of nobody, answer alike: no link between the names.
    assert other_name.status_code == unknown_name.status_code == 401
    assert other_name.json() == unknown_name.json()
    # The fourth failure on the account (whichever name) locked it.
    clock.advance(timedelta(seconds=31))
    assert (await _login(client, "tess")).status_code == 401
    assert (await _login(client, "tess@example.com")).status_code == 401


async def test_only_credential_managers_unlock_and_see_lockouts(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    plain = await directory.account("pat")
    admin = await directory.account("ada", roles=["admin"])
    target = owner.id
    for account in (plain, admin):
        # Admins do not outrank owners; plain users hold no reset permission at all.
        refused = await client.post(f"/api/v1/users/{target}/unlock", headers=account.headers)
        assert refused.status_code == 403, refused.text
    assert (
        await client.get(f"/api/v1/users/{plain.id}/lockout", headers=plain.headers)
    ).json() == {"locked": False, "locked_until": None, "failures": 0}
    assert (
        await client.get(f"/api/v1/users/{admin.id}/lockout", headers=plain.headers)
    ).status_code in (403, 404)


async def test_unknown_logins_are_answered_exactly_like_real_ones(
    client: httpx.AsyncClient, owner: Account, directory: Directory, clock: ShiftableClock
) -> None:
    await client.patch("/api/v1/settings", json={"lockout_threshold": 4}, headers=owner.headers)
    await directory.create("rita", password=PASSWORD)
    real, ghost = [], []
    for login, answers in (("rita", real), ("nobody-here", ghost)):
        for n in range(8):
            response = await _login(client, login, WRONG)
            answers.append(
                (
                    response.status_code,
                    response.json()["detail"],
                    response.headers.get("Retry-After"),
                )
            )
            if n % 2:
                clock.advance(timedelta(seconds=31))
    assert real == ghost
    assert {status for status, _, _ in real} == {401, 429}


async def test_many_failures_from_one_address_are_capped_for_every_account(
    settings: Settings,
    database: Database,
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    clock: ShiftableClock,
) -> None:
    await client.patch("/api/v1/settings", json={"ip_failure_limit": 10}, headers=owner.headers)
    await directory.create("vic", password=PASSWORD)
    for n in range(10):  # spraying: one guess each at many names
        assert (await _login(client, f"sprayed{n}", WRONG)).status_code == 401
    capped = await _login(client, "vic")
    assert capped.status_code == 429
    assert "network" in capped.json()["detail"]

    # Another address is not affected...
    app = create_app(settings, database=database)
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("198.51.100.9", 1234)),
        base_url="http://userdesk.test",
    )
    async with other:
        assert (await _login(other, "vic")).status_code == 200
    # ...and the cap lifts when the window has passed.
    clock.advance(timedelta(minutes=15))
    assert (await _login(client, "vic")).status_code == 200


async def test_failed_and_locked_attempts_leave_no_password_in_the_audit_log(
    client: httpx.AsyncClient, owner: Account, directory: Directory, clock: ShiftableClock
) -> None:
    await client.patch("/api/v1/settings", json={"lockout_threshold": 3}, headers=owner.headers)
    await directory.create("sam", password=PASSWORD)
    await _fail(client, "sam", clock, 3)
    entries = (await client.get("/api/v1/audit", headers=owner.headers)).json()["items"]
    assert any(e["action"] == "auth.account_locked" for e in entries)
    assert WRONG not in str(entries) and PASSWORD not in str(entries)


async def test_old_failure_counts_are_purged(
    client: httpx.AsyncClient, database: Database, directory: Directory, clock: ShiftableClock
) -> None:
    for n in range(5):
        await _login(client, f"ghost{n}", WRONG)
    clock.advance(timedelta(days=3))
    await _login(client, "latecomer", WRONG)
    async with database.reader() as session:
        keys = (await session.execute(text("SELECT key FROM sign_in_throttles"))).scalars().all()
    assert sorted(keys) == ["ip:203.0.113.7", "login:latecomer"]


async def test_wrong_current_passwords_count_toward_the_lockout(
    client: httpx.AsyncClient, owner: Account, directory: Directory, clock: ShiftableClock
) -> None:
    """A stolen session must not become a way to guess the password."""
    await client.patch("/api/v1/settings", json={"lockout_threshold": 3}, headers=owner.headers)
    await directory.create("cora", password=PASSWORD)
    assert (await _login(client, "cora")).status_code == 200
    change = {"current_password": WRONG, "new_password": "another long passphrase"}
    for _ in range(3):
        wrong = await client.post("/api/v1/me/password", json=change)
        assert wrong.status_code == 422
        assert wrong.json()["errors"][0] == {
            "field": "current_password",
            "code": "wrong_password",
            "message": "is not your password",
        }
        clock.advance(timedelta(seconds=31))
    locked = await client.post("/api/v1/me/password", json={**change, "current_password": PASSWORD})
    assert locked.status_code == 429
    assert "locked" in locked.json()["detail"]
    client.cookies.clear()
    assert (await _login(client, "cora")).status_code == 401  # locked for sign-in too
    reasons = [
        e["changes"]["reason"]["after"] for e in await _audit(client, owner, "auth.sign_in_failed")
    ]
    assert reasons.count("wrong current password") == 3


async def test_a_reset_by_emailed_link_ends_the_lockout(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    clock: ShiftableClock,
) -> None:
    await client.patch("/api/v1/settings", json={"lockout_threshold": 3}, headers=owner.headers)
    await directory.create("finn", password=PASSWORD)
    await _fail(client, "finn", clock, 3)
    await client.post("/api/v1/auth/password/forgot", json={"login": "finn"})
    [email] = await queued_emails(database, "password_reset")
    token = email["secrets"]["link"].rsplit("#token=", 1)[1]
    new = "a fresh start passphrase"
    done = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": new}
    )
    assert done.status_code == 200, done.text
    assert (await _login(client, "finn", new)).status_code == 200


def test_addresses_are_grouped_as_clients_are() -> None:
    from userdesk.actions.throttle import ip_key

    assert ip_key("203.0.113.7") == "ip:203.0.113.7"
    # An IPv4 client seen through a dual-stack socket is that IPv4 client, not all of them.
    assert ip_key("::ffff:203.0.113.7") == "ip:203.0.113.7"
    assert ip_key("::ffff:198.51.100.1") != ip_key("::ffff:203.0.113.7")
    # IPv6 hosts get a /64 each, so one host cannot dodge the cap by changing addresses.
    assert ip_key("2001:db8:1:2::5") == ip_key("2001:db8:1:2:ffff::9") == "ip:2001:db8:1:2::/64"
    assert ip_key(None) is None and ip_key("not an address") == "ip:not an address"
