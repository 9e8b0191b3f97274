"""The users API: create, read, update, deactivate, activate, delete, and the errors a
client sees for bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Account, Directory, queued_emails


async def _audit(client: httpx.AsyncClient, owner: Account, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params=params, headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_create_user_returns_the_user_pending_with_the_default_role(
    client: httpx.AsyncClient, owner: Account
) -> None:
    response = await client.post(
        "/api/v1/users",
        json={
            "name": "Zoë Ødegård",
            "username": "zoe.o",
            "email": "Zoe@Example.COM",
            "timezone": "Europe/Oslo",
            "given_name": "Zoë",
            "family_name": "Ødegård",
        },
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert response.headers["location"] == f"/api/v1/users/{user['id']}"
    assert user["status"] == "pending"
    assert user["roles"] == ["user"]
    assert user["email"] == "Zoe@example.com"
    assert user["type"] == "human"
    assert user["created_by"] == owner.id
    assert user["last_login_at"] is None
    assert user["has_password"] is False
    fetched = await client.get(f"/api/v1/users/{user['id']}", headers=owner.headers)
    assert fetched.json() == user


async def test_create_writes_an_audit_entry_with_request_facts_and_no_password(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create("ana", password="correct horse battery staple")
    assert user["has_password"] is True
    [entry] = await _audit(client, owner, target=user["id"], action="user.created")
    assert entry["actor"] == {"id": owner.id, "name": "olive"}
    assert entry["target"] == {"type": "user", "id": user["id"], "name": "ana"}
    assert entry["ip"] == "203.0.113.7"
    assert entry["user_agent"] == "pytest"
    assert entry["changes"]["email"] == {"before": None, "after": "ana@example.com"}
    assert entry["changes"]["password"] == {"changed": True}
    assert "correct horse" not in str(entry)


async def test_bot_starts_active_with_the_bot_role(directory: Directory) -> None:
    bot = await directory.create("deploy-bot", type="bot")
    assert (bot["type"], bot["status"], bot["roles"]) == ("bot", "active", ["bot"])


async def test_welcome_email_is_queued_in_the_outbox_with_the_change(
    directory: Directory, database: Any
) -> None:
    from sqlalchemy import select

    from userdesk.models import OutboxMessage

    await directory.create("wendy", send_welcome_email=True)
    await directory.create("walt")
    async with database.reader() as session:
        rows = list(await session.scalars(select(OutboxMessage)))
    assert [(r.kind, r.status, r.payload["to"]) for r in rows] == [
        ("email.welcome", "queued", "wendy@example.com")
    ]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"email": "not-an-email"}, "email", "email_syntax"),
        ({"email": "a@b"}, "email", "email_syntax"),
        ({"username": "a"}, "username", "username_length"),
        ({"username": "x" * 65}, "username", "username_length"),
        ({"username": "bad name"}, "username", "username_charset"),
        ({"username": "-dash"}, "username", "username_start"),
        ({"name": ""}, "name", "required"),
        ({"name": "   "}, "name", "required"),
        ({"name": "x" * 101}, "name", "length"),
        ({"name": "bell\x07"}, "name", "control_character"),
        ({"bio": "b" * 1001}, "bio", "length"),
        ({"timezone": "Mars/Olympus"}, "timezone", "timezone_unknown"),
        ({"voip_extension": "12a"}, "voip_extension", "voip_extension_format"),
        ({"avatar_url": "javascript:alert(1)"}, "avatar_url", "avatar_url_format"),
        ({"password": "short"}, "password", "password_min_length"),
        ({"roles": []}, "roles", "too_short"),
        ({"roles": ["wizard"]}, "roles", "unknown_role"),
        ({"type": "robot"}, "type", "enum"),
        ({"status": "active"}, "status", "extra_forbidden"),
        ({"email_verified": "perhaps"}, "email_verified", "bool_parsing"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient, owner: Account, body: dict[str, Any], field: str, code: str
) -> None:
    payload = {"name": "Val", "username": "val", "email": "val@example.com", **body}
    response = await client.post("/api/v1/users", json=payload, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_input"
    assert problem["status"] == 422
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in problem["errors"]
    ]
    listing = await client.get("/api/v1/users", headers=owner.headers)
    assert listing.json()["counts"]["all"] == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"[]",
        b'"a string"',
        b"null",
        b'{"name": 5, "username": ["x"], "email": {}}',
    ],
)
async def test_malformed_bodies_are_422_never_500(
    client: httpx.AsyncClient, owner: Account, payload: bytes
) -> None:
    response = await client.post(
        "/api/v1/users",
        content=payload,
        headers={**owner.headers, "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_input"


async def test_oversized_body_is_413(client: httpx.AsyncClient, owner: Account) -> None:
    payload = {"name": "Big", "username": "big", "email": "big@example.com", "bio": "x" * 2_000_000}
    response = await client.post("/api/v1/users", json=payload, headers=owner.headers)
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


@pytest.mark.parametrize(
    ("first", "second", "field"),
    [
        ({"username": "Renée"}, {"username": "RENÉE"}, "username"),
        # The same name in two Unicode forms: precomposed é and e + combining acute.
        ({"username": "ren\u00e9e"}, {"username": "rene\u0301e"}, "username"),
        ({"email": "Dup@Example.com"}, {"email": "dup@example.COM"}, "email"),
        ({"voip_extension": "1234"}, {"voip_extension": "1234"}, "voip_extension"),
    ],
)
async def test_duplicates_differing_only_by_case_or_unicode_form_are_409(
    client: httpx.AsyncClient,
    owner: Account,
    first: dict[str, str],
    second: dict[str, str],
    field: str,
) -> None:
    base = {"name": "Dup", "username": "dup1", "email": "dup1@example.com"}
    created = await client.post("/api/v1/users", json={**base, **first}, headers=owner.headers)
    assert created.status_code == 201, created.text
    other = {"name": "Dup", "username": "dup2", "email": "dup2@example.com"}
    response = await client.post("/api/v1/users", json={**other, **second}, headers=owner.headers)
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "duplicate"
    assert response.json()["field"] == field


async def test_username_is_stored_in_nfc(client: httpx.AsyncClient, directory: Directory) -> None:
    user = await directory.create("rene\u0301e", email="renee@example.com")
    assert user["username"] == "ren\u00e9e"


async def test_patch_changes_only_the_fields_given_and_audits_before_and_after(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create("pat", nickname="P", bio="hello")
    response = await client.patch(
        f"/api/v1/users/{user['id']}",
        json={
            "name": "Patricia Q",
            "bio": None,
            "email_verified": True,
            "timezone": "Asia/Tokyo",
            "avatar_url": "https://img.example.com/p.png",
        },
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "Patricia Q"
    assert updated["bio"] is None
    assert updated["nickname"] == "P"
    assert updated["email_verified"] is True
    assert updated["avatar"] == {"kind": "url", "url": "https://img.example.com/p.png"}
    assert updated["updated_at"] > user["updated_at"]
    [entry] = await _audit(client, owner, target=user["id"], action="user.updated")
    assert entry["changes"]["name"] == {"before": "Pat", "after": "Patricia Q"}
    assert entry["changes"]["bio"] == {"before": "hello", "after": None}
    assert "nickname" not in entry["changes"]


async def test_patch_refuses_null_for_required_fields_and_taken_usernames(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create("quinn")
    await directory.create("rory")
    nulled = await client.patch(
        f"/api/v1/users/{user['id']}", json={"email": None}, headers=owner.headers
    )
    assert nulled.status_code == 422
    assert nulled.json()["errors"][0]["field"] == "email"
    taken = await client.patch(
        f"/api/v1/users/{user['id']}", json={"username": "RORY"}, headers=owner.headers
    )
    assert taken.status_code == 409
    assert taken.json()["field"] == "username"
    same = await client.patch(
        f"/api/v1/users/{user['id']}", json={"username": "QUINN"}, headers=owner.headers
    )
    assert same.status_code == 200
    assert same.json()["username"] == "QUINN"


async def test_setting_a_password_by_hand_is_audited_without_the_secret(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create("sam")
    response = await client.patch(
        f"/api/v1/users/{user['id']}",
        json={"password": "a new long passphrase", "require_password_change": True},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["has_password"] is True
    assert response.json()["require_password_change"] is True
    [entry] = await _audit(client, owner, target=user["id"], action="user.updated")
    assert entry["changes"]["password"] == {"changed": True}
    assert "passphrase" not in response.text + str(entry)


async def test_deactivate_keeps_data_revokes_tokens_and_activate_restores_pending(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    member = await directory.account("dora", roles=["user"])
    assert (
        await client.get(f"/api/v1/users/{member.id}", headers=member.headers)
    ).status_code == 200
    response = await client.post(f"/api/v1/users/{member.id}/deactivate", headers=owner.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "deactivated"
    assert response.json()["deactivated_at"] is not None
    assert response.json()["name"] == "Dora"
    refused = await client.get(f"/api/v1/users/{member.id}", headers=member.headers)
    assert refused.status_code == 401
    again = await client.post(f"/api/v1/users/{member.id}/deactivate", headers=owner.headers)
    assert again.status_code == 200
    activated = await client.post(f"/api/v1/users/{member.id}/activate", headers=owner.headers)
    assert activated.json()["status"] == "pending"
    assert activated.json()["deactivated_at"] is None
    # The revoked token stays revoked after reactivation.
    assert (
        await client.get(f"/api/v1/users/{member.id}", headers=member.headers)
    ).status_code == 401
    actions = [e["action"] for e in await _audit(client, owner, target=member.id)]
    assert actions[:2] == ["user.activated", "user.deactivated"]


async def test_delete_removes_the_user_and_keeps_audit_snapshots(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.account("gone", roles=["user"])
    response = await client.delete(f"/api/v1/users/{user.id}", headers=owner.headers)
    assert response.status_code == 204
    assert (await client.get(f"/api/v1/users/{user.id}", headers=owner.headers)).status_code == 404
    assert (
        await client.delete(f"/api/v1/users/{user.id}", headers=owner.headers)
    ).status_code == 404
    assert (await client.get("/api/v1/users", headers=user.headers)).status_code == 401
    entries = await _audit(client, owner, target=user.id)
    assert entries[0]["action"] == "user.deleted"
    assert entries[0]["target"]["name"] == "gone"
    assert entries[0]["changes"]["email"] == {"before": "gone@example.com", "after": None}
    # The username and email are free again.
    await directory.create("gone")


async def test_users_created_by_a_deleted_user_survive(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    manager = await directory.account("mona", roles=["user-manager"])
    made = await directory.create("made", as_=manager)
    assert made["created_by"] == manager.id
    assert (
        await client.delete(f"/api/v1/users/{manager.id}", headers=owner.headers)
    ).status_code == 204
    survivor = await client.get(f"/api/v1/users/{made['id']}", headers=owner.headers)
    assert survivor.status_code == 200
    assert survivor.json()["created_by"] is None


async def test_unknown_user_is_404_problem(client: httpx.AsyncClient, owner: Account) -> None:
    for method, path in [
        ("GET", "/api/v1/users/nope"),
        ("PATCH", "/api/v1/users/nope"),
        ("POST", "/api/v1/users/nope/deactivate"),
        ("PUT", "/api/v1/users/nope/roles"),
    ]:
        body = {"roles": ["user"]} if method == "PUT" else {} if method == "PATCH" else None
        response = await client.request(method, path, json=body, headers=owner.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic b2xpdmU6eA=="},
        {"Authorization": "Bearer "},
    ],
)
async def test_requests_without_a_valid_token_are_401(
    client: httpx.AsyncClient, owner: Account, headers: dict[str, str]
) -> None:
    response = await client.get("/api/v1/users", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthenticated"


async def test_a_user_without_users_read_sees_only_themselves(
    client: httpx.AsyncClient, directory: Directory, owner: Account
) -> None:
    member = await directory.account("mel", roles=["user"])
    assert (
        await client.get(f"/api/v1/users/{member.id}", headers=member.headers)
    ).status_code == 200
    other = await client.get(f"/api/v1/users/{owner.id}", headers=member.headers)
    assert other.status_code == 404
    listing = await client.get("/api/v1/users", headers=member.headers)
    assert listing.status_code == 403
    assert listing.json()["permission"] == "users.read"
    created = await client.post(
        "/api/v1/users",
        json={"name": "X", "username": "xx", "email": "x@example.com"},
        headers=member.headers,
    )
    assert created.status_code == 403
    assert created.json()["permission"] == "users.create"


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/users" in spec["paths"]
    assert "/api/v1/users/{user_id}/roles" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200


async def test_a_changed_email_is_unverified_unless_the_request_says_otherwise(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create("eve", email_verified=True)
    path = f"/api/v1/users/{user['id']}"
    recased = await client.patch(path, json={"email": "EVE@example.com"}, headers=owner.headers)
    assert recased.json()["email_verified"] is True
    moved = await client.patch(path, json={"email": "eve@elsewhere.org"}, headers=owner.headers)
    assert moved.json()["email_verified"] is False
    vouched = await client.patch(
        path, json={"email": "eve@third.org", "email_verified": True}, headers=owner.headers
    )
    assert vouched.json()["email_verified"] is True


async def test_a_body_that_is_not_utf8_is_422_naming_the_body(
    client: httpx.AsyncClient, owner: Account
) -> None:
    response = await client.post(
        "/api/v1/users",
        content=b"\xff\xfe{",
        headers={**owner.headers, "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "body"


async def test_welcome_email_again(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Any
) -> None:
    pat = await directory.create("pat")
    manager = await directory.account("max", roles=["user-manager"])
    plain = await directory.account("uma")
    sent = await client.post(f"/api/v1/users/{pat['id']}/welcome-email", headers=manager.headers)
    assert sent.status_code == 200, sent.text
    assert "mail catcher" in sent.json()["warning"]
    emails = await queued_emails(database, "welcome")
    assert [e["to"] for e in emails] == ["pat@example.com"]
    [entry] = await _audit(client, owner, target=pat["id"], action="user.welcome_email_sent")
    assert entry["actor"]["name"] == "max"

    refused = await client.post(f"/api/v1/users/{pat['id']}/welcome-email", headers=plain.headers)
    assert refused.status_code == 403 and refused.json()["permission"] == "users.edit"
    await client.post(f"/api/v1/users/{pat['id']}/deactivate", headers=owner.headers)
    gone = await client.post(f"/api/v1/users/{pat['id']}/welcome-email", headers=owner.headers)
    assert gone.status_code == 409 and "activate them" in gone.json()["detail"]
    assert len(await queued_emails(database, "welcome")) == 1


async def test_directory_fields_are_set_by_admins_and_the_manager_is_a_user(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    boss = await directory.create("boss")
    worker = await directory.create(
        "worker", department="Support", title="Agent", manager=boss["id"], locale="pt_BR"
    )
    assert worker["directory"]["manager"] == boss["id"]
    assert worker["directory"]["department"] == "Support"
    assert worker["directory"]["name_derived"] is False
    for body, field in [
        ({"manager": "no-such-user"}, "manager"),
        ({"manager": worker["id"]}, "manager"),
        ({"locale": "english please"}, "locale"),
        ({"department": "x" * 201}, "department"),
    ]:
        response = await client.patch(
            f"/api/v1/users/{worker['id']}", json=body, headers=owner.headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
    # Users may edit their own profile, not what the directory says of them.
    account = await directory.account("selfie", roles=["user"])
    own = await client.patch(
        f"/api/v1/users/{account.id}", json={"department": "Executive"}, headers=account.headers
    )
    assert own.status_code == 403, own.text
    # A manager who is deleted leaves their reports without one.
    assert (
        await client.delete(f"/api/v1/users/{boss['id']}", headers=owner.headers)
    ).status_code == 204
    after = (await client.get(f"/api/v1/users/{worker['id']}", headers=owner.headers)).json()
    assert after["directory"]["manager"] is None
    assert after["directory"]["department"] == "Support"


async def test_a_taken_username_with_a_manager_change_is_a_409(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    boss = await directory.create("chief")
    mover = await directory.create("mover")
    response = await client.patch(
        f"/api/v1/users/{mover['id']}",
        json={"username": "chief", "manager": boss["id"]},
        headers=owner.headers,
    )
    assert response.status_code == 409, response.text
    assert response.json()["field"] == "username"
