"""Seats (pending + active humans against the workspace's seat_limit), settings, audit log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import Account, Directory


async def _seats(client: httpx.AsyncClient, owner: Account) -> dict[str, int | None]:
    response = await client.get("/api/v1/seats", headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _set_limit(
    client: httpx.AsyncClient, owner: Account, limit: int | None
) -> httpx.Response:
    return await client.patch("/api/v1/settings", json={"seat_limit": limit}, headers=owner.headers)


async def test_seats_count_pending_and_active_humans_only(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    assert await _seats(client, owner) == {"used": 1, "limit": None, "available": None}
    pending = await directory.create("pen")
    await directory.create("robo", type="bot")
    leaving = await directory.create("leaver")
    await client.post(f"/api/v1/users/{leaving['id']}/deactivate", headers=owner.headers)
    assert (await _set_limit(client, owner, 5)).status_code == 200
    assert await _seats(client, owner) == {"used": 2, "limit": 5, "available": 3}
    await client.delete(f"/api/v1/users/{pending['id']}", headers=owner.headers)
    assert await _seats(client, owner) == {"used": 1, "limit": 5, "available": 4}


async def test_creating_or_activating_beyond_the_limit_is_409_and_bots_are_free(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    leaving = await directory.create("leaver")
    await client.post(f"/api/v1/users/{leaving['id']}/deactivate", headers=owner.headers)
    await _set_limit(client, owner, 2)
    await directory.create("second")
    refused = await client.post(
        "/api/v1/users",
        json={"name": "Third", "username": "third", "email": "third@example.com"},
        headers=owner.headers,
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "seat_limit_reached"
    assert "2 seats" in refused.json()["detail"]
    back = await client.post(f"/api/v1/users/{leaving['id']}/activate", headers=owner.headers)
    assert back.status_code == 409
    assert back.json()["code"] == "seat_limit_reached"
    assert (await client.get(f"/api/v1/users/{leaving['id']}", headers=owner.headers)).json()[
        "status"
    ] == "deactivated"
    await directory.create("free-bot", type="bot")
    listing = (await client.get("/api/v1/users", headers=owner.headers)).json()
    assert listing["counts"] == {"all": 4, "pending": 1, "active": 2, "deactivated": 1}


async def test_seat_limit_cannot_go_below_usage_or_negative(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    await directory.create("one")
    below = await _set_limit(client, owner, 1)
    assert below.status_code == 409
    assert below.json()["field"] == "seat_limit"
    negative = await _set_limit(client, owner, -1)
    assert negative.status_code == 422
    assert negative.json()["errors"][0]["field"] == "seat_limit"
    assert (await _set_limit(client, owner, 2)).json()["seat_limit"] == 2
    assert (await _set_limit(client, owner, None)).json()["seat_limit"] is None


async def test_concurrent_creates_never_exceed_the_seat_limit(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """50 creates at once against 3 free seats: exactly 3 users come into being."""
    await _set_limit(client, owner, 4)

    async def create(n: int) -> httpx.Response:
        return await client.post(
            "/api/v1/users",
            json={"name": f"Racer {n}", "username": f"racer{n}", "email": f"racer{n}@example.com"},
            headers=owner.headers,
        )

    responses = await asyncio.gather(*(create(n) for n in range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 3, statuses
    assert statuses.count(409) == 47, statuses
    assert all(r.json()["code"] == "seat_limit_reached" for r in responses if r.status_code == 409)
    assert await _seats(client, owner) == {"used": 4, "limit": 4, "available": 0}
    listing = (
        await client.get("/api/v1/users", params={"q": "racer"}, headers=owner.headers)
    ).json()
    assert listing["counts"]["all"] == 3


async def test_concurrent_activations_never_exceed_the_seat_limit(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    sleepers = [await directory.create(f"sleeper{n}") for n in range(12)]
    for user in sleepers:
        await client.post(f"/api/v1/users/{user['id']}/deactivate", headers=owner.headers)
    await _set_limit(client, owner, 3)
    responses = await asyncio.gather(
        *(client.post(f"/api/v1/users/{u['id']}/activate", headers=owner.headers) for u in sleepers)
    )
    assert sorted(r.status_code for r in responses).count(200) == 2
    assert await _seats(client, owner) == {"used": 3, "limit": 3, "available": 0}


async def test_seats_need_seats_read(client: httpx.AsyncClient, directory: Directory) -> None:
    member = await directory.account("mem", roles=["user"])
    response = await client.get("/api/v1/seats", headers=member.headers)
    assert response.status_code == 403
    assert response.json()["permission"] == "seats.read"
    manager = await directory.account("man", roles=["user-manager"])
    assert (await client.get("/api/v1/seats", headers=manager.headers)).status_code == 200


DEFAULT_SETTINGS = {
    "name": "My Workspace",
    "seat_limit": None,
    "session_idle_minutes": 480,
    "session_max_hours": 168,
    "password_min_length": 12,
    "password_max_length": 128,
    "password_max_repeated": None,
    "password_require_lowercase": False,
    "password_require_uppercase": False,
    "password_require_digit": False,
    "password_require_symbol": False,
    "password_reject_common": True,
    "password_reject_personal": True,
    "email_verification_required": False,
    "two_factor_required_roles": [],
    "lockout_threshold": 10,
    "lockout_minutes": 15,
    "ip_failure_limit": 100,
    "smtp_host": None,
    "smtp_port": None,
    "smtp_security": "starttls",
    "smtp_username": None,
    "smtp_password_set": False,
    "mail_from_address": None,
    "mail_from_name": None,
    "mail_max_attempts": 8,
    "invitation_expiry_days": 7,
    "email_configured": False,
}


async def test_settings_read_update_validate_and_audit(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    assert (await client.get("/api/v1/settings", headers=owner.headers)).json() == (
        DEFAULT_SETTINGS
    )
    renamed = await client.patch(
        "/api/v1/settings", json={"name": "  Acme Corp "}, headers=owner.headers
    )
    assert renamed.json() == {**DEFAULT_SETTINGS, "name": "Acme Corp"}
    for body, field in [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"seat_limit": "many"}, "seat_limit"),
        ({"colour": "red"}, "colour"),
    ]:
        bad = await client.patch("/api/v1/settings", json=body, headers=owner.headers)
        assert bad.status_code == 422, body
        assert bad.json()["errors"][0]["field"] == field
    entries = (
        await client.get(
            "/api/v1/audit", params={"action": "settings.updated"}, headers=owner.headers
        )
    ).json()["items"]
    assert [e["changes"] for e in entries] == [
        {"name": {"before": "My Workspace", "after": "Acme Corp"}}
    ]
    admin = await directory.account("adm", roles=["admin"])
    assert (await client.get("/api/v1/settings", headers=admin.headers)).status_code == 200
    manager = await directory.account("mgr", roles=["user-manager"])
    denied = await client.patch("/api/v1/settings", json={"seat_limit": 9}, headers=manager.headers)
    assert denied.status_code == 403
    assert denied.json()["permission"] == "settings.manage"


async def test_audit_log_filters_and_pages_newest_first(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    users = [await directory.create(f"aud{n}") for n in range(5)]
    await client.post(f"/api/v1/users/{users[0]['id']}/deactivate", headers=owner.headers)

    async def audit(**params: str | int) -> dict:
        response = await client.get("/api/v1/audit", params=params, headers=owner.headers)
        assert response.status_code == 200, response.text
        return response.json()

    everything = await audit(limit=500)
    ids = [e["id"] for e in everything["items"]]
    assert ids == sorted(ids, reverse=True)
    assert everything["items"][0]["action"] == "user.deactivated"
    walked, cursor = [], None
    while True:
        page = await audit(limit=2, **({"cursor": cursor} if cursor else {}))
        walked += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert walked == ids
    created = await audit(action="user.created", actor=owner.id)
    assert len(created["items"]) == 5
    assert all(e["actor"]["id"] == owner.id for e in created["items"])
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await audit(since=future))["items"] == []
    assert len((await audit(until=future, target=users[0]["id"]))["items"]) == 2
    bad = await client.get("/api/v1/audit", params={"cursor": "###"}, headers=owner.headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "cursor"
    naive = await client.get(
        "/api/v1/audit", params={"since": "2026-01-01T00:00:00"}, headers=owner.headers
    )
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["field"] == "since"


@pytest.mark.parametrize("role", ["user-manager", "user", "guest"])
async def test_audit_needs_audit_read(
    client: httpx.AsyncClient, directory: Directory, role: str
) -> None:
    account = await directory.account("peek", roles=[role])
    response = await client.get("/api/v1/audit", headers=account.headers)
    assert response.status_code == 403
    assert response.json()["permission"] == "audit.read"
