"""Personal access tokens over HTTP: minted once, restricted to a subset, expiring, revocable."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import text

from tests.conftest import Account, Directory, ShiftableClock
from userdesk.db import Database


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_token_is_shown_once_stored_as_a_digest_and_listed_without_its_secret(
    client: httpx.AsyncClient, database: Database, owner: Account
) -> None:
    minted = await client.post("/api/v1/me/tokens", json={"name": "ci"}, headers=owner.headers)
    assert minted.status_code == 201, minted.text
    secret = minted.json()["secret"]
    token = minted.json()["token"]
    assert secret.startswith("udt_") and token["permissions"] is None
    assert token["hint"] == secret[:8]
    me = await client.get("/api/v1/me", headers=bearer(secret))
    assert me.json()["username"] == "olive"
    listed = await client.get("/api/v1/me/tokens", headers=owner.headers)
    assert [t["name"] for t in listed.json()["items"]] == ["test", "ci"]
    assert secret not in listed.text
    async with database.reader() as session:
        rows = (await session.execute(text("SELECT * FROM api_tokens"))).all()
        entries = (await session.execute(text("SELECT changes FROM audit_entries"))).all()
    assert secret not in str(rows) and secret not in str(entries)


async def test_a_restricted_token_can_do_only_what_it_was_given(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    minted = await client.post(
        "/api/v1/me/tokens",
        json={"name": "reader", "permissions": ["users.read"]},
        headers=owner.headers,
    )
    assert minted.json()["token"]["permissions"] == ["users.read"]
    reader = bearer(minted.json()["secret"])
    assert (await client.get("/api/v1/users", headers=reader)).status_code == 200
    refused = await client.post(
        "/api/v1/users",
        json={"name": "N", "username": "newbie", "email": "n@example.com"},
        headers=reader,
    )
    assert refused.status_code == 403
    assert refused.json()["permission"] == "users.create"
    # A restricted token touches none of its user's credentials, keys or tokens.
    for method, path, body in (
        ("POST", "/api/v1/me/tokens", {"name": "wider"}),
        ("GET", "/api/v1/me/tokens", None),
        ("POST", "/api/v1/me/password", {"current_password": "x", "new_password": "y" * 12}),
        ("PUT", "/api/v1/me/e2e-keys", {"public_key": "k", "private_key": "p"}),
        ("POST", "/api/v1/me/two-factor/setup", {"password": "guess"}),
    ):
        refused = await client.request(method, path, json=body, headers=reader)
        assert refused.status_code == 403, (path, refused.text)
        assert "restricted" in refused.json()["detail"]


async def test_a_token_minted_with_an_expiring_token_does_not_outlive_it(
    client: httpx.AsyncClient, owner: Account, clock: ShiftableClock
) -> None:
    day = await client.post(
        "/api/v1/me/tokens", json={"name": "ci", "expires_in_days": 1}, headers=owner.headers
    )
    ci = bearer(day.json()["secret"])
    longer = await client.post(
        "/api/v1/me/tokens", json={"name": "forever", "expires_in_days": 30}, headers=ci
    )
    assert longer.status_code == 422
    assert longer.json()["errors"][0]["code"] == "outlives_minting_token"
    child = await client.post("/api/v1/me/tokens", json={"name": "child"}, headers=ci)
    assert child.status_code == 201
    assert child.json()["token"]["expires_at"] == day.json()["token"]["expires_at"]
    clock.advance(timedelta(days=1, seconds=1))
    assert (
        await client.get("/api/v1/me", headers=bearer(child.json()["secret"]))
    ).status_code == 401


async def test_token_permissions_must_be_known_and_held_by_the_user(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    manager = await directory.account("mia", roles=["user-manager"])
    for permissions, code in (
        (["users.read", "no.such"], "unknown_permission"),
        (["settings.manage"], "beyond_owner"),
    ):
        response = await client.post(
            "/api/v1/me/tokens",
            json={"name": "t", "permissions": permissions},
            headers=manager.headers,
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["code"] == code
    for body, field in (
        ({"name": ""}, "name"),
        ({"name": "t", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "t", "colour": "red"}, "colour"),
    ):
        response = await client.post("/api/v1/me/tokens", json=body, headers=manager.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == field


async def test_a_token_narrows_when_its_user_loses_a_role(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    manager = await directory.account("max", roles=["user-manager"])
    assert (await client.get("/api/v1/users", headers=manager.headers)).status_code == 200
    await client.put(
        f"/api/v1/users/{manager.id}/roles", json={"roles": ["user"]}, headers=owner.headers
    )
    assert (await client.get("/api/v1/users", headers=manager.headers)).status_code == 403


async def test_tokens_expire_and_revoked_ones_stop_at_once(
    client: httpx.AsyncClient, owner: Account, clock: ShiftableClock
) -> None:
    short = await client.post(
        "/api/v1/me/tokens", json={"name": "day", "expires_in_days": 1}, headers=owner.headers
    )
    day = bearer(short.json()["secret"])
    assert (await client.get("/api/v1/me", headers=day)).status_code == 200
    clock.advance(timedelta(days=1, seconds=1))
    assert (await client.get("/api/v1/me", headers=day)).status_code == 401

    kept = await client.post("/api/v1/me/tokens", json={"name": "kept"}, headers=owner.headers)
    secret, token_id = kept.json()["secret"], kept.json()["token"]["id"]
    revoked = await client.delete(f"/api/v1/me/tokens/{token_id}", headers=owner.headers)
    assert revoked.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(secret))).status_code == 401
    listed = (await client.get("/api/v1/me/tokens", headers=owner.headers)).json()["items"]
    assert next(t for t in listed if t["id"] == token_id)["revoked_at"] is not None
    actions = [
        e["action"]
        for e in (await client.get("/api/v1/audit", headers=owner.headers)).json()["items"]
    ]
    assert actions.count("token.created") >= 2 and "token.revoked" in actions


async def test_bots_get_tokens_from_admins_but_people_mint_their_own(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    bot = await directory.create("deploybot", type="bot")
    person = await directory.account("paula")
    minted = await client.post(
        f"/api/v1/users/{bot['id']}/tokens", json={"name": "deploy"}, headers=owner.headers
    )
    assert minted.status_code == 201, minted.text
    bot_token = bearer(minted.json()["secret"])
    assert (await client.get("/api/v1/me", headers=bot_token)).json()["username"] == "deploybot"
    listed = await client.get(f"/api/v1/users/{bot['id']}/tokens", headers=owner.headers)
    assert [t["name"] for t in listed.json()["items"]] == ["deploy"]

    for_person = await client.post(
        f"/api/v1/users/{person.id}/tokens", json={"name": "sneaky"}, headers=owner.headers
    )
    assert for_person.status_code == 403
    by_person = await client.post(
        f"/api/v1/users/{bot['id']}/tokens", json={"name": "mine"}, headers=person.headers
    )
    assert by_person.status_code == 403
    # An admin revokes a person's token (a leaked one, say); the person's own list shows it.
    [paulas] = (await client.get("/api/v1/me/tokens", headers=person.headers)).json()["items"]
    wrong_user = await client.delete(
        f"/api/v1/users/{bot['id']}/tokens/{paulas['id']}", headers=owner.headers
    )
    assert wrong_user.status_code == 404
    gone = await client.delete(
        f"/api/v1/users/{person.id}/tokens/{paulas['id']}", headers=owner.headers
    )
    assert gone.status_code == 204
    assert (await client.get("/api/v1/me", headers=person.headers)).status_code == 401


async def test_nobody_revokes_or_lists_the_tokens_of_someone_who_outranks_them(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    admin = await directory.account("adele", roles=["admin"])
    [olives] = (await client.get("/api/v1/me/tokens", headers=owner.headers)).json()["items"]
    listing = await client.get(f"/api/v1/users/{owner.id}/tokens", headers=admin.headers)
    assert listing.status_code == 403
    revoke = await client.delete(
        f"/api/v1/users/{owner.id}/tokens/{olives['id']}", headers=admin.headers
    )
    assert revoke.status_code == 403
    assert (await client.get("/api/v1/me", headers=owner.headers)).status_code == 200
