"""Signing in with a password: the session cookie, /me, logout, timeouts, first sign-in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import Account, Directory, ShiftableClock
from userdesk.config import Settings
from userdesk.db import Database

PASSWORD = "a long enough passphrase"


async def _login(client: httpx.AsyncClient, login: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"login": login, "password": password})


async def _audit(client: httpx.AsyncClient, owner: Account, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params=params, headers=owner.headers)
    return response.json()["items"]


async def test_first_sign_in_activates_sets_the_cookie_and_me_answers(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create("sia", password=PASSWORD)
    assert user["status"] == "pending"
    seats_before = (await client.get("/api/v1/seats", headers=owner.headers)).json()
    response = await _login(client, "SIA@example.com")
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == user["id"]
    assert response.json()["user"]["status"] == "active"
    assert response.json()["user"]["last_login_at"] is not None
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("userdesk_session=uds_")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    me = await client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["username"] == "sia"
    assert (await client.get("/api/v1/seats", headers=owner.headers)).json() == seats_before
    listing = (await client.get("/api/v1/users", headers=owner.headers)).json()["counts"]
    assert (listing["pending"], listing["active"]) == (0, 2)
    [entry] = await _audit(client, owner, action="auth.signed_in")
    assert entry["target"]["id"] == user["id"]
    assert entry["changes"]["status"] == {"before": "pending", "after": "active"}
    assert PASSWORD not in str(entry)


async def test_the_session_cookie_is_marked_secure_by_default(
    database: Database, database_url: str, directory: Directory
) -> None:
    from userdesk.http.app import create_app

    await directory.create("sec", password=PASSWORD)
    app = create_app(Settings(database_url=database_url), database=database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://userdesk.test"
    ) as https:
        response = await _login(https, "sec")
        assert "Secure" in response.headers["set-cookie"]


async def test_unknown_user_and_wrong_password_get_the_same_answer(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    await directory.create("wendy", password=PASSWORD)
    wrong = await _login(client, "wendy", "not the passphrase")
    unknown = await _login(client, "nobody", "not the passphrase")
    no_password = await _login(client, (await directory.create("nopw"))["username"], "x")
    for response in (wrong, unknown, no_password):
        assert response.status_code == 401
        assert response.json()["detail"] == "wrong username, email or password"
        assert "set-cookie" not in response.headers
    assert (await client.get("/api/v1/me")).status_code == 401
    failures = await _audit(client, owner, action="auth.sign_in_failed")
    assert {e["target"]["name"] for e in failures} == {"wendy", "nopw"}
    assert "not the passphrase" not in str(failures)


async def test_bad_sign_in_bodies_are_422(client: httpx.AsyncClient) -> None:
    for body in ({}, {"login": "x"}, {"login": "", "password": "p"}, {"login": 5, "password": []}):
        response = await client.post("/api/v1/auth/login", json=body)
        assert response.status_code == 422, body


async def test_logout_ends_the_session(client: httpx.AsyncClient, directory: Directory) -> None:
    await directory.create("leo", password=PASSWORD)
    await _login(client, "leo")
    cookie = client.cookies.get("userdesk_session")
    out = await client.post("/api/v1/auth/logout")
    assert out.status_code == 204
    assert (await client.get("/api/v1/me")).status_code == 401
    client.cookies.set("userdesk_session", cookie)  # a copy kept by an attacker
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_deactivation_ends_sessions_and_deactivated_users_cannot_sign_in(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create("dee", password=PASSWORD)
    await _login(client, "dee")
    assert (await client.get("/api/v1/me")).status_code == 200
    await client.post(f"/api/v1/users/{user['id']}/deactivate", headers=owner.headers)
    assert (await client.get("/api/v1/me")).status_code == 401
    refused = await _login(client, "dee")
    assert refused.status_code == 401
    assert "deactivated" in refused.json()["detail"]


async def test_sessions_end_after_the_idle_and_the_absolute_timeout(
    client: httpx.AsyncClient, owner: Account, directory: Directory, clock: ShiftableClock
) -> None:
    await client.patch(
        "/api/v1/settings",
        json={"session_idle_minutes": 30, "session_max_hours": 2},
        headers=owner.headers,
    )
    await directory.create("tim", password=PASSWORD)
    await _login(client, "tim")
    for _ in range(5):  # active use keeps it alive past the idle timeout...
        clock.advance(timedelta(minutes=20))
        assert (await client.get("/api/v1/me")).status_code == 200
    clock.advance(timedelta(minutes=31))  # ...idleness ends it
    assert (await client.get("/api/v1/me")).status_code == 401

    await _login(client, "tim")
    for _ in range(5):
        clock.advance(timedelta(minutes=20))
        assert (await client.get("/api/v1/me")).status_code == 200
    clock.advance(timedelta(minutes=21))  # 2 h 1 min after sign-in, however active
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_a_cookie_session_refuses_cross_site_changes(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    await client.put(
        f"/api/v1/users/{(await directory.create('ada', password=PASSWORD))['id']}/roles",
        json={"roles": ["admin"]},
        headers=owner.headers,
    )
    await _login(client, "ada")
    body = {"name": "Evil", "username": "evil", "email": "evil@example.com"}
    forged = await client.post(
        "/api/v1/users", json=body, headers={"origin": "https://attacker.example"}
    )
    assert forged.status_code == 403
    same_site = await client.post(
        "/api/v1/users", json=body, headers={"origin": "http://userdesk.test"}
    )
    assert same_site.status_code == 201, same_site.text


async def test_hashes_are_upgraded_at_sign_in_when_parameters_change(
    client: httpx.AsyncClient, directory: Directory, database: Database
) -> None:
    from sqlalchemy import select

    from userdesk.models import User
    from userdesk.security.passwords import Passwords

    user = await directory.create("rae", password=PASSWORD)

    async def stored() -> str:
        async with database.reader() as session:
            return await session.scalar(
                select(User.password_hash).where(User.public_id == user["id"])
            )

    before = await stored()
    stronger = Passwords(Settings(argon2_time_cost=2, argon2_memory_kib=16, argon2_parallelism=1))
    object.__setattr__(database.services, "passwords", stronger)
    assert (await _login(client, "rae")).status_code == 200
    after = await stored()
    assert after != before and "t=2" in after and "m=16" in after
    assert (await _login(client, "rae")).status_code == 200


@pytest.mark.parametrize("header", ["Basic abc", "Bearer "])
async def test_a_malformed_authorization_header_is_401_even_with_a_cookie(
    client: httpx.AsyncClient, directory: Directory, header: str
) -> None:
    await directory.create("hal", password=PASSWORD)
    await _login(client, "hal")
    response = await client.get("/api/v1/me", headers={"authorization": header})
    assert response.status_code == 401


async def test_a_required_password_change_blocks_everything_else_until_done(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create(
        "rita", password=PASSWORD, roles=["admin"], require_password_change=True
    )
    await _login(client, "rita")
    blocked = await client.get("/api/v1/users")
    assert blocked.status_code == 403
    assert blocked.json()["code"] == "password_change_required"
    assert (await client.get("/api/v1/me")).json()["require_password_change"] is True
    wrong = await client.post(
        "/api/v1/me/password",
        json={"current_password": "guess", "new_password": "a brand new passphrase"},
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "current_password"
    same = await client.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": PASSWORD}
    )
    assert same.status_code == 422
    assert same.json()["errors"][0]["field"] == "new_password"
    changed = await client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["require_password_change"] is False
    assert (await client.get("/api/v1/users")).status_code == 200
    entries = await _audit(client, owner, target=user["id"], action="user.password_changed")
    assert len(entries) == 1 and "passphrase" not in str(entries)
    client.cookies.clear()
    assert (await _login(client, "rita")).status_code == 401
    assert (await _login(client, "rita", "a brand new passphrase")).status_code == 200


async def test_sessions_are_listed_and_revoked_by_their_user_and_by_admins(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    user = await directory.create("sam", password=PASSWORD)
    await _login(client, "sam")
    phone = await client.post(
        "/api/v1/auth/login",
        json={"login": "sam", "password": PASSWORD},
        headers={"user-agent": "phone"},
    )
    laptop_cookie = client.cookies.get("userdesk_session")
    assert phone.status_code == 200
    mine = (await client.get("/api/v1/me/sessions")).json()["items"]
    assert [s["user_agent"] for s in mine] == ["phone", "pytest"]
    assert [s["current"] for s in mine] == [True, False]
    assert mine[0]["ip"] == "203.0.113.7"

    # Ending the other one from here.
    assert (await client.delete(f"/api/v1/me/sessions/{mine[1]['id']}")).status_code == 204
    assert (await client.delete(f"/api/v1/me/sessions/{mine[1]['id']}")).status_code == 404
    assert len((await client.get("/api/v1/me/sessions")).json()["items"]) == 1

    # An admin sees and ends them; a plain user may not look at someone else's.
    seen = await client.get(f"/api/v1/users/{user['id']}/sessions", headers=owner.headers)
    assert [s["user_agent"] for s in seen.json()["items"]] == ["phone"]
    member = await directory.account("nosy", roles=["user"])
    peek = await client.get(f"/api/v1/users/{user['id']}/sessions", headers=member.headers)
    assert peek.status_code == 403
    ended = await client.delete(f"/api/v1/users/{user['id']}/sessions", headers=owner.headers)
    assert ended.status_code == 204
    assert (await client.get("/api/v1/me")).status_code == 401
    client.cookies.set("userdesk_session", laptop_cookie or "")
    assert (await client.get("/api/v1/me")).status_code == 401
    actions = [e["action"] for e in await _audit(client, owner, target=user["id"])]
    assert actions.count("user.sessions_revoked") == 2


async def test_the_password_hash_is_compared_outside_the_sign_in_locks(
    client: httpx.AsyncClient, directory: Directory, database: Database
) -> None:
    """Two sign-ins of one account compare their hashes at the same time: each waits at a
    barrier inside the hash check until the other arrives. Were the hash compared under
    the account's lock (or, on SQLite, in the write transaction), the second could not
    reach the barrier until the first had finished, and the barrier would break."""
    import asyncio
    import threading

    await directory.create("para", password=PASSWORD)
    passwords = database.services.passwords
    compare = passwords._verify
    barrier = threading.Barrier(2, timeout=10)

    def meeting(password_hash: str | None, password: str) -> bool:
        barrier.wait()
        return compare(password_hash, password)

    object.__setattr__(passwords, "_verify", meeting)
    try:
        right, wrong = await asyncio.gather(_login(client, "para"), _login(client, "para", "no"))
    finally:
        object.__delattr__(passwords, "_verify")
    assert right.status_code == 200, right.text
    assert wrong.status_code == 401, wrong.text
    assert not barrier.broken


async def test_a_password_changed_while_signing_in_is_judged_against_the_new_hash(
    client: httpx.AsyncClient, directory: Directory, database: Database
) -> None:
    """The early hash check stands only for the hash it was made against: a password
    reset between the two steps sends the attempt back to the stored (new) hash."""
    from userdesk.actions import auth as auth_actions
    from userdesk.actions.inputs import SignIn

    user = await directory.create("swap", password=PASSWORD)
    attempt = SignIn(login="swap", password=PASSWORD)
    async with database.reader() as session:
        checked = await auth_actions.check_sign_in_password(session, data=attempt, ip=None)
    assert checked is not None and checked.matched
    reset = await client.post(
        f"/api/v1/users/{user['id']}/password/reset",
        json={"mode": "manual", "password": "an entirely new passphrase"},
        headers=directory.owner.headers,
    )
    assert reset.status_code == 200, reset.text
    async with database.transaction() as session:
        result = await auth_actions.sign_in(
            session, data=attempt, ip=None, user_agent=None, checked=checked
        )
    assert result.user is None and result.secret is None
    assert (await _login(client, "swap", "an entirely new passphrase")).status_code == 200


async def test_an_account_unlocked_between_the_two_steps_is_judged_on_its_password(
    client: httpx.AsyncClient, directory: Directory, database: Database
) -> None:
    """The early check of a locked account hashes the decoy and compares nothing; if an
    administrator unlocks the account before the attempt is judged, the right password
    must then be compared and let in, not counted as wrong."""
    from sqlalchemy import select

    from userdesk.actions import auth as auth_actions
    from userdesk.actions.inputs import SignIn
    from userdesk.models import SignInThrottle, User

    user = await directory.create("lou", password=PASSWORD)
    async with database.transaction() as session:
        row_id = await session.scalar(select(User.id).where(User.public_id == user["id"]))
        now = database.services.clock.now()
        session.add(
            SignInThrottle(
                key=f"account:{row_id}",
                failures=5,
                window_started_at=now,
                last_failure_at=now,
                locked_until=now + timedelta(minutes=15),
            )
        )
    attempt = SignIn(login="lou", password=PASSWORD)
    async with database.reader() as session:
        checked = await auth_actions.check_sign_in_password(session, data=attempt, ip=None)
    assert checked is not None and checked.locked and not checked.matched
    unlocked = await client.post(
        f"/api/v1/users/{user['id']}/unlock", headers=directory.owner.headers
    )
    assert unlocked.status_code == 200, unlocked.text
    async with database.transaction() as session:
        result = await auth_actions.sign_in(
            session, data=attempt, ip=None, user_agent=None, checked=checked
        )
    assert result.user is not None and result.secret is not None
