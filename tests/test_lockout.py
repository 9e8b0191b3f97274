"""Brute force: growing delays, a temporary lockout, a cap per address, and the admin's unlock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text

from tests.conftest import Account, Directory, ShiftableClock
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
    client: httpx.AsyncClient, owner: Account, directory: Directory, clock: ShiftableClock
) -> None:
    await client.patch(
        "/api/v1/settings",
        json={"lockout_threshold": 5, "lockout_minutes": 10},
        headers=owner.headers,
    )
    user = await directory.create("lou", password=PASSWORD)
    assert await _fail(client, "lou", clock, 5) == [401] * 5
    locked = await _login(client, "lou")
    assert locked.status_code == 429
    assert "locked" in locked.json()["detail"]
    assert 8 * 60 < int(locked.headers["Retry-After"]) <= 10 * 60
    status = await client.get(f"/api/v1/users/{user['id']}/lockout", headers=owner.headers)
    assert status.json()["locked"] is True and status.json()["failures"] == 5
    [entry] = await _audit(client, owner, "auth.account_locked")
    assert entry["target"]["name"] == "lou"

    clock.advance(timedelta(minutes=10))  # the lockout runs out
    assert (await _login(client, "lou")).status_code == 200

    assert await _fail(client, "lou", clock, 5) == [401] * 5
    assert (await _login(client, "lou")).status_code == 429
    unlocked = await client.post(f"/api/v1/users/{user['id']}/unlock", headers=owner.headers)
    assert unlocked.status_code == 200
    assert unlocked.json() == {"locked": False, "locked_until": None, "failures": 0}
    assert (await _login(client, "lou")).status_code == 200
    [unlock_entry] = await _audit(client, owner, "auth.account_unlocked")
    assert unlock_entry["actor"]["name"] == "olive"
    assert unlock_entry["changes"]["locked"] == {"before": True, "after": False}


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


async def test_unknown_logins_are_throttled_exactly_like_real_ones(
    client: httpx.AsyncClient, owner: Account, directory: Directory, clock: ShiftableClock
) -> None:
    await client.patch("/api/v1/settings", json={"lockout_threshold": 4}, headers=owner.headers)
    await directory.create("rita", password=PASSWORD)
    real, ghost = [], []
    for login, answers in (("rita", real), ("nobody-here", ghost)):
        for _ in range(6):
            response = await _login(client, login, WRONG)
            answers.append(
                (response.status_code, response.json()["code"], response.headers.get("Retry-After"))
            )
            if response.status_code == 401 and len(answers) < 4:
                clock.advance(timedelta(seconds=31))
    assert real == ghost
    assert [status for status, _, _ in real][-1] == 429


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
