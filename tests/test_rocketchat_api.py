"""The Rocket.Chat-compatible users API at /api/v1/<method>, over raw HTTP as scripts call
it, on SQLite and PostgreSQL: login with and without 2FA, X-Auth-Token/X-User-Id, the
users.*, roles.* and invite methods with Rocket.Chat's shapes and error bodies, and the
console's rules (permissions, the last owner, audit) holding here too."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pyotp
from sqlalchemy import select

from tests.conftest import Account, Directory, ShiftableClock, queued_emails
from userdesk.db import Database
from userdesk.models import AuditEntry

PASSWORD = "a long enough passphrase"


def rc(account: Account) -> dict[str, str]:
    """Rocket.Chat's headers, with a personal access token."""
    return {"X-Auth-Token": account.token, "X-User-Id": account.id}


def refused(response: httpx.Response, status: int, error_type: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False, body
    if error_type is not None:
        assert body.get("errorType") == error_type, body
    return str(body.get("message") or body.get("error"))


async def login(
    client: httpx.AsyncClient, user: str, password: str = PASSWORD, **extra: Any
) -> Any:
    response = await client.post(
        "/api/v1/login", json={"user": user, "password": password, **extra}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


async def test_login_me_and_logout(client: httpx.AsyncClient, directory: Directory) -> None:
    created = await directory.create("zoe", password=PASSWORD, email="zoe@example.com")
    data = await login(client, "zoe")
    assert data["userId"] == created["id"] and data["authToken"].startswith("uds_")
    assert data["me"]["username"] == "zoe" and data["me"]["_id"] == created["id"]
    headers = {"X-Auth-Token": data["authToken"], "X-User-Id": data["userId"]}
    assert not client.cookies, "a Rocket.Chat login sets no cookie"

    me = await client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["success"] is True and body["_id"] == created["id"]
    assert body["emails"] == [{"address": "zoe@example.com", "verified": False}]
    assert body["services"] == {"password": {"exists": True}, "totp": {"enabled": False}}
    assert body["active"] is True and body["roles"] == ["user"]
    # The first sign-in made the pending user active; an email address is shown once verified.
    assert "email" not in body

    # Without X-Auth-Token the same path is the native API's.
    native = await client.get("/api/v1/me", headers=directory.owner.headers)
    assert native.status_code == 200 and native.json()["username"] == "olive"
    assert "_id" not in native.json()

    # By email too; each login is its own token.
    again = await login(client, "zoe@example.com")
    assert again["authToken"] != data["authToken"]

    out = await client.post("/api/v1/logout", headers=headers)
    assert out.json() == {
        "status": "success",
        "success": True,
        "data": {"message": "You've been logged out!"},
    }
    refused(await client.get("/api/v1/me", headers=headers), 401)
    # The other login is untouched.
    other = {"X-Auth-Token": again["authToken"], "X-User-Id": again["userId"]}
    assert (await client.get("/api/v1/me", headers=other)).status_code == 200


async def test_login_refusals(client: httpx.AsyncClient, directory: Directory) -> None:
    await directory.create("zoe", password=PASSWORD)
    wrong = await client.post("/api/v1/login", json={"user": "zoe", "password": "nope nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {
        "status": "error",
        "success": False,
        "error": "Unauthorized",
        "message": "Unauthorized",
    }
    missing = await client.post("/api/v1/login", json={"password": PASSWORD})
    assert "user" in refused(missing, 400, "invalid-params")
    assert missing.json()["details"]["errors"][0]["field"] == "user"
    garbage = await client.post(
        "/api/v1/login", content=b"{nope", headers={"content-type": "application/json"}
    )
    refused(garbage, 400, "invalid-params")


async def test_login_with_two_factor(
    client: httpx.AsyncClient, directory: Directory, clock: ShiftableClock
) -> None:
    await directory.create("zoe", password=PASSWORD)
    await client.post("/api/v1/auth/login", json={"login": "zoe", "password": PASSWORD})
    setup = await client.post("/api/v1/me/two-factor/setup", json={"password": PASSWORD})
    secret = setup.json()["secret"]
    confirmed = await client.post(
        "/api/v1/me/two-factor/confirm", json={"code": pyotp.TOTP(secret).at(clock.now())}
    )
    assert confirmed.status_code == 200, confirmed.text
    client.cookies.clear()

    needed = await client.post("/api/v1/login", json={"user": "zoe", "password": PASSWORD})
    assert needed.status_code == 401
    assert needed.json()["error"] == "totp-required"
    assert needed.json()["details"]["method"] == "totp"

    clock.advance(timedelta(seconds=60))
    data = await login(client, "zoe", code=pyotp.TOTP(secret).at(clock.now()))
    assert data["me"]["services"]["totp"] == {"enabled": True}

    clock.advance(timedelta(seconds=60))
    by_header = await client.post(
        "/api/v1/login",
        json={"username": "zoe", "password": PASSWORD},
        headers={"x-2fa-code": pyotp.TOTP(secret).at(clock.now())},
    )
    assert by_header.status_code == 200, by_header.text


async def test_headers_must_name_the_tokens_user(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    zoe = await directory.account("zoe")
    owner = directory.owner
    assert (await client.get("/api/v1/me", headers=rc(zoe))).json()["username"] == "zoe"
    mismatched = {"X-Auth-Token": zoe.token, "X-User-Id": owner.id}
    body = refused(await client.get("/api/v1/me", headers=mismatched), 401)
    assert "logged in" in body
    only_token = await client.get(
        "/api/v1/users.info?username=zoe", headers={"X-Auth-Token": zoe.token}
    )
    refused(only_token, 401)
    # A bearer token is the native API's way, not Rocket.Chat's.
    refused(await client.get("/api/v1/users.info?username=zoe", headers=zoe.headers), 401)


async def test_create_user(
    client: httpx.AsyncClient, directory: Directory, database: Database
) -> None:
    owner = directory.owner
    response = await client.post(
        "/api/v1/users.create",
        headers=rc(owner),
        json={
            "email": "Ann@Example.com",
            "name": "Ann Example",
            "password": PASSWORD,
            "username": "ann",
            "verified": True,
            "statusText": "on call",
            "roles": ["user", "admin"],
            "joinDefaultChannels": True,
            "customFields": {"shirt": "M"},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    user = body["user"]
    assert body["success"] is True
    assert user["username"] == "ann" and user["name"] == "Ann Example"
    assert user["emails"] == [{"address": "Ann@example.com", "verified": True}]
    assert user["roles"] == ["admin", "user"] and user["type"] == "user"
    assert user["statusText"] == "on call" and user["active"] is True
    assert user["createdAt"].endswith("Z") and len(user["createdAt"]) == 24

    # The same rules as the console: a taken username, a bad address, a missing field.
    taken = await client.post(
        "/api/v1/users.create",
        headers=rc(owner),
        json={"email": "b@example.com", "name": "B", "password": PASSWORD, "username": "ANN"},
    )
    refused(taken, 400, "error-field-unavailable")
    assert taken.json()["details"]["field"] == "username"
    bad = await client.post(
        "/api/v1/users.create",
        headers=rc(owner),
        json={"email": "not an address", "name": "B", "password": PASSWORD, "username": "bee"},
    )
    refused(bad, 400, "invalid-params")
    assert [e["field"] for e in bad.json()["details"]["errors"]] == ["email"]
    no_password = await client.post(
        "/api/v1/users.create",
        headers=rc(owner),
        json={"email": "b@example.com", "name": "B", "username": "bee"},
    )
    assert "password" in refused(no_password, 400, "invalid-params")

    # A bot by its role; a deactivated user; a random password, emailed.
    bot = await client.post(
        "/api/v1/users.create",
        headers=rc(owner),
        json={
            "email": "bot@example.com",
            "name": "Bot",
            "password": PASSWORD,
            "username": "beep",
            "roles": ["bot"],
        },
    )
    assert bot.json()["user"]["type"] == "bot", bot.text
    gone = await client.post(
        "/api/v1/users.create",
        headers=rc(owner),
        json={
            "email": "g@example.com",
            "name": "G",
            "password": PASSWORD,
            "username": "gone",
            "active": False,
        },
    )
    assert gone.json()["user"]["active"] is False, gone.text
    random = await client.post(
        "/api/v1/users.create",
        headers=rc(owner),
        json={"email": "r@example.com", "name": "R", "username": "rand", "setRandomPassword": True},
    )
    assert random.status_code == 200, random.text
    assert random.json()["user"]["requirePasswordChange"] is True
    emailed = await queued_emails(database, "random_password")
    assert [e["to"] for e in emailed] == ["r@example.com"] and emailed[0]["secrets"]["password"]

    # A plain user may not create anyone.
    zoe = await directory.account("zoe")
    denied = await client.post(
        "/api/v1/users.create",
        headers=rc(zoe),
        json={"email": "x@example.com", "name": "X", "password": PASSWORD, "username": "xx"},
    )
    refused(denied, 403, "error-unauthorized")
    assert denied.json()["details"]["permission"] == "users.create"

    async with database.reader() as session:
        entry = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "user.created", AuditEntry.target_name == "ann"
            )
        )
    assert entry is not None and entry.actor_name == "olive"


async def test_info_by_id_username_or_email(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    zoe = await directory.create("zoe", email="zoe@example.com", bio="Hi", nickname="Z")
    headers = rc(directory.owner)
    for query in (f"userId={zoe['id']}", "username=zoe", "email=ZOE@example.com"):
        response = await client.get(f"/api/v1/users.info?{query}", headers=headers)
        assert response.status_code == 200, response.text
        user = response.json()["user"]
        assert user["_id"] == zoe["id"] and user["bio"] == "Hi" and user["nickname"] == "Z"
        assert user["status"] == "offline"
    missing = await client.get("/api/v1/users.info?username=nobody", headers=headers)
    assert missing.status_code == 400
    assert missing.json() == {"success": False, "error": "User not found."}


async def test_list_pages_filters_sorts_and_projects(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    for name in ("alice", "alfred", "bob", "carol"):
        await directory.create(name, email=f"{name}@example.com")
    headers = rc(directory.owner)

    async def listing(**params: Any) -> Any:
        query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
        response = await client.get("/api/v1/users.list", params=query, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    everyone = await listing()
    assert [u["username"] for u in everyone["users"]] == [
        "alfred",
        "alice",
        "bob",
        "carol",
        "olive",
    ]
    assert everyone["total"] == 5 and everyone["count"] == 5 and everyone["offset"] == 0

    page = await listing(offset=1, count=2)
    assert [u["username"] for u in page["users"]] == ["alice", "bob"]
    assert page["total"] == 5 and page["count"] == 2 and page["offset"] == 1

    starts = await listing(query={"username": {"$regex": "^AL", "$options": "i"}})
    assert [u["username"] for u in starts["users"]] == ["alfred", "alice"]
    assert starts["total"] == 2
    exact_case = await listing(query={"username": {"$regex": "^AL"}})
    assert exact_case["total"] == 0
    either = await listing(
        query={"$or": [{"emails.address": "bob@example.com"}, {"name": {"$regex": "arol$"}}]}
    )
    assert [u["username"] for u in either["users"]] == ["bob", "carol"]
    owners = await listing(query={"roles": "owner"})
    assert [u["username"] for u in owners["users"]] == ["olive"]
    others = await listing(query={"roles": {"$nin": ["owner"]}, "active": True})
    assert others["total"] == 4

    newest = await listing(sort={"createdAt": -1}, count=1)
    assert newest["users"][0]["username"] == "carol"
    projected = await listing(fields={"username": 1}, count=1)
    assert projected["users"] == [{"_id": projected["users"][0]["_id"], "username": "alfred"}]
    dropped = await listing(fields={"emails": 0}, count=1)
    assert "emails" not in dropped["users"][0] and "username" in dropped["users"][0]

    async def bad(param: str, value: Any, error_type: str) -> str:
        response = await client.get(
            "/api/v1/users.list", params={param: json.dumps(value)}, headers=headers
        )
        return refused(response, 400, error_type)

    assert "literal" in await bad("query", {"username": {"$regex": "a.*b"}}, "error-invalid-query")
    assert "$where" in await bad("query", {"$where": "1"}, "error-invalid-query")
    assert "password" in await bad("query", {"password": "x"}, "error-invalid-query")
    assert "one field" in await bad("sort", {"username": 1, "name": 1}, "error-invalid-sort")
    await bad("sort", {"password": 1}, "error-invalid-sort")
    await bad("fields", {"name": 1, "bio": 0}, "error-invalid-fields")
    deep: dict[str, Any] = {"username": "x"}
    for _ in range(20):
        deep = {"$and": [deep]}
    assert "deeper" in await bad("query", deep, "error-invalid-query")
    refused(
        await client.get("/api/v1/users.list?query={nope", headers=headers),
        400,
        "error-invalid-query",
    )

    # Rocket.Chat's cap: at most 100 a page.
    for n in range(100):
        await directory.create(f"user{n:03}")
    capped = await listing(count=500)
    assert capped["count"] == 100 and capped["total"] == 105


async def test_update_is_all_or_nothing(
    client: httpx.AsyncClient, directory: Directory, database: Database
) -> None:
    zoe = await directory.create("zoe")
    headers = rc(directory.owner)
    response = await client.post(
        "/api/v1/users.update",
        headers=headers,
        json={
            "userId": zoe["id"],
            "data": {
                "name": "Zoë Zed",
                "statusText": "away",
                "roles": ["user", "admin"],
                "customFields": {},
            },
        },
    )
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert user["name"] == "Zoë Zed" and user["statusText"] == "away"
    assert user["roles"] == ["admin", "user"]

    # A role that does not exist refuses the whole update: the name stays.
    partly = await client.post(
        "/api/v1/users.update",
        headers=headers,
        json={"userId": zoe["id"], "data": {"name": "Changed", "roles": ["wizard"]}},
    )
    refused(partly, 400)
    info = await client.get(f"/api/v1/users.info?userId={zoe['id']}", headers=headers)
    assert info.json()["user"]["name"] == "Zoë Zed"

    invalid = await client.post(
        "/api/v1/users.update",
        headers=headers,
        json={"userId": zoe["id"], "data": {"email": "nope"}},
    )
    refused(invalid, 400, "invalid-params")
    assert invalid.json()["details"]["errors"][0]["field"] == "email"
    refused(
        await client.post("/api/v1/users.update", headers=headers, json={"userId": zoe["id"]}),
        400,
        "invalid-params",
    )
    unknown = await client.post(
        "/api/v1/users.update", headers=headers, json={"userId": "nobody", "data": {"name": "X"}}
    )
    refused(unknown, 400, "error-invalid-user")

    off = await client.post(
        "/api/v1/users.update",
        headers=headers,
        json={"userId": zoe["id"], "data": {"active": False}},
    )
    assert off.json()["user"]["active"] is False
    async with database.reader() as session:
        actions = list(
            await session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.target_id == zoe["id"])
                .order_by(AuditEntry.id)
            )
        )
    assert actions[-3:] == ["user.updated", "user.roles_changed", "user.deactivated"]


async def test_active_status_and_the_last_owner(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    zoe = await directory.create("zoe")
    owner = directory.owner
    off = await client.post(
        "/api/v1/users.setActiveStatus",
        headers=rc(owner),
        json={"userId": zoe["id"], "activeStatus": False},
    )
    assert off.json() == {"user": {"_id": zoe["id"], "active": False}, "success": True}
    on = await client.post(
        "/api/v1/users.setActiveStatus",
        headers=rc(owner),
        json={"userId": zoe["id"], "activeStatus": True},
    )
    assert on.json()["user"]["active"] is True
    maybe = await client.post(
        "/api/v1/users.setActiveStatus",
        headers=rc(owner),
        json={"userId": zoe["id"], "activeStatus": "maybe"},
    )
    refused(maybe, 400, "invalid-params")
    assert maybe.json()["details"]["errors"][0]["field"] == "activeStatus"
    last = await client.post(
        "/api/v1/users.setActiveStatus",
        headers=rc(owner),
        json={"userId": owner.id, "activeStatus": False},
    )
    assert "owner" in refused(last, 400, "error-action-not-allowed")
    assert last.json()["details"]["code"] == "last_owner"
    refused(
        await client.post("/api/v1/users.delete", headers=rc(owner), json={"userId": owner.id}),
        400,
    )


async def test_delete(client: httpx.AsyncClient, directory: Directory) -> None:
    await directory.create("zoe")
    headers = rc(directory.owner)
    done = await client.post(
        "/api/v1/users.delete", headers=headers, json={"username": "zoe", "confirmRelinquish": True}
    )
    assert done.json() == {"success": True}
    refused(
        await client.post("/api/v1/users.delete", headers=headers, json={"username": "zoe"}),
        400,
        "error-invalid-user",
    )
    refused(
        await client.post("/api/v1/users.delete", headers=headers, json={}),
        400,
        "error-user-param-not-provided",
    )


async def test_reset_totp_and_e2e_keys(
    client: httpx.AsyncClient, directory: Directory, database: Database, clock: ShiftableClock
) -> None:
    zoe = await directory.account("zoe", password=PASSWORD)
    put = await client.put(
        "/api/v1/me/e2e-keys", headers=zoe.headers, json={"public_key": "pk", "private_key": "sk"}
    )
    assert put.status_code == 200, put.text
    bob = await directory.account("bob")
    # Without users.read, bob cannot even see zoe, let alone reset her keys.
    refused(
        await client.post("/api/v1/users.resetE2EKey", headers=rc(bob), json={"username": "zoe"}),
        400,
        "error-invalid-user",
    )
    headers = rc(directory.owner)
    reset = await client.post(
        "/api/v1/users.resetE2EKey", headers=headers, json={"username": "zoe"}
    )
    assert reset.json() == {"success": True}, reset.text
    # As the console's reset: the keys go and the user is signed out everywhere.
    refused(await client.get("/api/v1/me", headers=rc(zoe)), 401)
    again = await client.post(
        "/api/v1/users.resetE2EKey", headers=headers, json={"username": "zoe"}
    )
    assert "no end-to-end" in refused(again, 400, "error-action-not-allowed")

    # No 2FA to reset is said so; with 2FA on, the reset turns it off.
    none = await client.post("/api/v1/users.resetTOTP", headers=headers, json={"userId": zoe.id})
    assert "no two-factor" in refused(none, 400, "error-action-not-allowed")
    await client.post("/api/v1/auth/login", json={"login": "zoe", "password": PASSWORD})
    setup = await client.post("/api/v1/me/two-factor/setup", json={"password": PASSWORD})
    code = pyotp.TOTP(setup.json()["secret"]).at(clock.now())
    assert (
        await client.post("/api/v1/me/two-factor/confirm", json={"code": code})
    ).status_code == 200
    client.cookies.clear()
    totp = await client.post("/api/v1/users.resetTOTP", headers=headers, json={"userId": zoe.id})
    assert totp.json() == {"success": True}, totp.text
    assert (await login(client, "zoe"))["me"]["services"]["totp"] == {"enabled": False}
    async with database.reader() as session:
        actions = set(
            await session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == zoe.id))
        )
    assert {"user.e2e_keys_reset", "user.two_factor_reset"} <= actions


async def test_invites_and_registration(client: httpx.AsyncClient, directory: Directory) -> None:
    headers = rc(directory.owner)
    refused(
        await client.post(
            "/api/v1/users.register",
            json={"username": "newbie", "email": "n@example.com", "pass": PASSWORD, "name": "N"},
        ),
        400,
        "error-user-registration-secret",
    )
    invite = await client.post(
        "/api/v1/findOrCreateInvite",
        headers=headers,
        json={"rid": "GENERAL", "days": 7, "maxUses": 1},
    )
    assert invite.status_code == 200, invite.text
    made = invite.json()
    assert made["days"] == 7 and made["maxUses"] == 1 and made["uses"] == 0
    assert made["url"].endswith(made["inviteToken"]) and made["rid"] == "GENERAL"
    refused(
        await client.post("/api/v1/findOrCreateInvite", headers=headers, json={"days": 3}),
        400,
        "invalid-number-of-days",
    )
    refused(
        await client.post("/api/v1/findOrCreateInvite", headers=headers, json={"maxUses": 7}),
        400,
        "invalid-number-of-uses",
    )
    listed = await client.get("/api/v1/listInvites", headers=headers)
    assert [i["_id"] for i in listed.json()] == [made["_id"]]

    valid = await client.post("/api/v1/validateInviteToken", json={"token": made["inviteToken"]})
    assert valid.json() == {"valid": True, "success": True}
    assert (await client.post("/api/v1/validateInviteToken", json={"token": "nope"})).json()[
        "valid"
    ] is False
    used = await client.post(
        "/api/v1/useInviteToken", headers=headers, json={"token": made["inviteToken"]}
    )
    assert "account" in refused(used, 400, "error-action-not-allowed")

    registered = await client.post(
        "/api/v1/users.register",
        json={
            "username": "newbie",
            "email": "n@example.com",
            "pass": PASSWORD,
            "name": "New Bie",
            "secretURL": made["url"],
        },
    )
    assert registered.status_code == 200, registered.text
    assert registered.json()["user"]["username"] == "newbie"
    assert (await login(client, "newbie"))["me"]["name"] == "New Bie"
    # One use only: the link is used up.
    assert (
        await client.post("/api/v1/validateInviteToken", json={"token": made["inviteToken"]})
    ).json()["valid"] is False

    other = (
        await client.post(
            "/api/v1/findOrCreateInvite", headers=headers, json={"days": 0, "maxUses": 0}
        )
    ).json()
    assert other["days"] == 0 and other["maxUses"] == 0
    assert (
        await client.delete(f"/api/v1/removeInvite/{other['_id']}", headers=headers)
    ).json() is True
    refused(
        await client.delete("/api/v1/removeInvite/nope", headers=headers),
        400,
        "invalid-invitation-id",
    )
    assert (
        await client.post("/api/v1/validateInviteToken", json={"token": other["inviteToken"]})
    ).json()["valid"] is False


async def test_presence_and_avatars(client: httpx.AsyncClient, directory: Directory) -> None:
    await directory.create("zoe", password=PASSWORD)
    headers = rc(directory.owner)
    before = await client.get("/api/v1/users.getPresence?username=zoe", headers=headers)
    assert before.json() == {"presence": "offline", "success": True}
    await login(client, "zoe")
    after = await client.get("/api/v1/users.getPresence?username=zoe", headers=headers)
    assert after.json()["presence"] == "online"

    initials = await client.get("/api/v1/users.getAvatar?username=zoe", headers=headers)
    assert initials.status_code == 307 and initials.headers["location"] == "/avatar/zoe"
    svg = await client.get("/avatar/zoe", headers=headers)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    refused(await client.get("/avatar/zoe"), 401)

    set_url = await client.post(
        "/api/v1/users.setAvatar",
        headers=headers,
        json={"avatarUrl": "https://pics.example/zoe.png", "username": "zoe"},
    )
    assert set_url.json() == {"success": True}, set_url.text
    moved = await client.get("/avatar/zoe", headers=headers)
    assert moved.status_code == 302 and moved.headers["location"] == "https://pics.example/zoe.png"
    reset = await client.post(
        "/api/v1/users.resetAvatar", headers=headers, json={"username": "zoe"}
    )
    assert reset.json() == {"success": True}
    assert (await client.get("/avatar/zoe", headers=headers)).status_code == 200
    refused(await client.post("/api/v1/users.setAvatar", headers=headers, json={}), 400)


async def test_welcome_and_forgotten_password_emails(
    client: httpx.AsyncClient, directory: Directory, database: Database
) -> None:
    await directory.create("zoe", email="zoe@example.com", password=PASSWORD)
    headers = rc(directory.owner)
    welcome = await client.post(
        "/api/v1/users.sendWelcomeEmail", headers=headers, json={"email": "zoe@example.com"}
    )
    assert welcome.json() == {"success": True}, welcome.text
    assert [e["to"] for e in await queued_emails(database, "welcome")][-1] == "zoe@example.com"
    for email in ("zoe@example.com", "nobody@example.com"):
        forgot = await client.post("/api/v1/users.forgotPassword", json={"email": email})
        assert forgot.json() == {"success": True}
    assert [e["to"] for e in await queued_emails(database, "password_reset")] == ["zoe@example.com"]
    refused(await client.post("/api/v1/users.forgotPassword", json={}), 400)


async def test_personal_access_tokens(client: httpx.AsyncClient, directory: Directory) -> None:
    await directory.create("zoe", password=PASSWORD)
    data = await login(client, "zoe")
    session = {"X-Auth-Token": data["authToken"], "X-User-Id": data["userId"]}
    made = await client.post(
        "/api/v1/users.generatePersonalAccessToken",
        headers=session,
        json={"tokenName": "bot", "bypassTwoFactor": True},
    )
    token = made.json()["token"]
    by_token = {"X-Auth-Token": token, "X-User-Id": data["userId"]}
    assert (await client.get("/api/v1/me", headers=by_token)).json()["username"] == "zoe"
    refused(
        await client.post(
            "/api/v1/users.generatePersonalAccessToken", headers=session, json={"tokenName": "bot"}
        ),
        400,
        "error-token-already-exists",
    )
    listed = (await client.get("/api/v1/users.getPersonalAccessTokens", headers=session)).json()
    assert [t["name"] for t in listed["tokens"]] == ["bot"]
    assert token.startswith(listed["tokens"][0]["lastTokenPart"])

    renewed = await client.post(
        "/api/v1/users.regeneratePersonalAccessToken", headers=session, json={"tokenName": "bot"}
    )
    new_token = renewed.json()["token"]
    assert new_token != token
    refused(await client.get("/api/v1/me", headers=by_token), 401)
    assert (
        await client.get("/api/v1/me", headers={**by_token, "X-Auth-Token": new_token})
    ).status_code == 200

    # Logging out with a personal access token leaves it alive.
    await client.post("/api/v1/logout", headers={**by_token, "X-Auth-Token": new_token})
    assert (
        await client.get("/api/v1/me", headers={**by_token, "X-Auth-Token": new_token})
    ).status_code == 200

    gone = await client.post(
        "/api/v1/users.removePersonalAccessToken", headers=session, json={"tokenName": "bot"}
    )
    assert gone.json() == {"success": True}
    refused(await client.get("/api/v1/me", headers={**by_token, "X-Auth-Token": new_token}), 401)
    refused(
        await client.post(
            "/api/v1/users.removePersonalAccessToken", headers=session, json={"tokenName": "bot"}
        ),
        400,
        "error-token-does-not-exists",
    )


async def test_roles(client: httpx.AsyncClient, directory: Directory) -> None:
    await directory.create("zoe")
    headers = rc(directory.owner)
    roles = (await client.get("/api/v1/roles.list", headers=headers)).json()["roles"]
    by_id = {r["_id"]: r for r in roles}
    assert {"owner", "admin", "user", "guest", "bot"} <= set(by_id)
    assert by_id["owner"]["protected"] is True and by_id["owner"]["scope"] == "Users"

    added = await client.post(
        "/api/v1/roles.addUserToRole", headers=headers, json={"roleId": "admin", "username": "zoe"}
    )
    assert added.json()["role"]["_id"] == "admin", added.text
    refused(
        await client.post(
            "/api/v1/roles.addUserToRole",
            headers=headers,
            json={"roleName": "admin", "username": "zoe"},
        ),
        400,
        "error-user-already-in-role",
    )
    refused(
        await client.post(
            "/api/v1/roles.addUserToRole",
            headers=headers,
            json={"roleId": "wizard", "username": "zoe"},
        ),
        400,
        "error-role-not-found",
    )
    holders = (await client.get("/api/v1/roles.getUsersInRole?role=admin", headers=headers)).json()
    assert [u["username"] for u in holders["users"]] == ["zoe"] and holders["total"] == 1
    removed = await client.post(
        "/api/v1/roles.removeUserFromRole",
        headers=headers,
        json={"roleId": "admin", "username": "zoe"},
    )
    assert removed.status_code == 200, removed.text
    refused(
        await client.post(
            "/api/v1/roles.removeUserFromRole",
            headers=headers,
            json={"roleId": "admin", "username": "zoe"},
        ),
        400,
        "error-user-not-in-role",
    )
    assert (await client.get("/api/v1/roles.getUsersInRole?role=admin", headers=headers)).json()[
        "total"
    ] == 0
    refused(
        await client.get("/api/v1/roles.getUsersInRole?role=wizard", headers=headers),
        400,
        "error-invalid-roleId",
    )

    # Nobody grants more than they hold: an admin cannot make an owner.
    admin = await directory.account("adam", roles=["admin"])
    denied = await client.post(
        "/api/v1/roles.addUserToRole",
        headers=rc(admin),
        json={"roleId": "owner", "username": "zoe"},
    )
    refused(denied, 403, "error-unauthorized")


async def test_errors_keep_to_each_api(client: httpx.AsyncClient, directory: Directory) -> None:
    headers = rc(directory.owner)
    unknown = await client.get("/api/v1/users.nothing", headers=headers)
    assert unknown.status_code == 404 and unknown.json()["success"] is False
    wrong_method = await client.get("/api/v1/users.create", headers=headers)
    assert wrong_method.status_code == 405 and wrong_method.json()["success"] is False
    # The native API still answers problem+json, with or without Rocket.Chat's headers.
    native = await client.get("/api/v1/users/nobody", headers=directory.owner.headers)
    assert native.status_code == 404
    assert native.headers["content-type"] == "application/problem+json"
    refused(await client.get("/api/v1/users.list"), 401)
    # Only /api/v1/me itself is shared: below it, the native API answers, in its format.
    below = await client.get("/api/v1/me/tokens", headers=headers)
    assert below.status_code == 401
    assert below.headers["content-type"] == "application/problem+json"


async def test_crafted_queries_are_answered_not_crashed(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.create("zoe", password=PASSWORD)
    await directory.create("bob")
    await login(client, "zoe")
    headers = rc(directory.owner)

    async def usernames(query: Any) -> list[str]:
        response = await client.get(
            "/api/v1/users.list", params={"query": json.dumps(query)}, headers=headers
        )
        assert response.status_code == 200, response.text
        return [u["username"] for u in response.json()["users"]]

    async def refusal(query: Any) -> str:
        response = await client.get(
            "/api/v1/users.list", params={"query": json.dumps(query)}, headers=headers
        )
        return refused(response, 400, "error-invalid-query")

    everyone = ["bob", "olive", "zoe"]
    # As in MongoDB: an empty condition matches everyone; a missing date is not equal to one.
    assert await usernames({"$or": [{}]}) == everyone
    assert await usernames({"$and": [{}, {"username": "bob"}]}) == ["bob"]
    assert await usernames({"lastLogin": {"$ne": "2000-01-01T00:00:00Z"}}) == everyone
    assert await usernames({"$nor": [{"lastLogin": {"$lt": "2000-01-01T00:00:00Z"}}]}) == everyone
    assert await usernames({"lastLogin": {"$gt": "2000-01-01T00:00:00Z"}}) == ["zoe"]
    assert await usernames({"lastLogin": {"$exists": False}}) == ["bob", "olive"]
    assert await usernames({"username": {"$regex": ""}}) == everyone
    assert await usernames({"emails.address": {"$regex": "example\\.com$"}}) == everyone
    assert await usernames({"type": "bot"}) == []

    for query in (
        {"type": []},
        {"type": {"a": 1}},
        {"type": {"$in": [["x"]]}},
        {"createdAt": {"$gt": "0001-01-01T00:00:00+01:00"}},
        {"createdAt": {"$lt": "9999-12-31T23:59:59-01:00"}},
        {"createdAt": {"$gt": "yesterday"}},
        {"name": {"$gt": "a"}},
        {"$or": [{}] * 300},
        {"username": {"$regex": "^(a|b)"}},
        {"username": {"$regex": "a", "$options": "x"}},
        {"active": "yes"},
    ):
        await refusal(query)


async def test_nul_characters_and_big_bodies_are_refused_in_rocketchat_format(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = rc(directory.owner)
    for method, body in (
        ("users.delete", {"username": "a\u0000b"}),
        ("users.update", {"userId": "a\u0000b", "data": {"name": "x"}}),
        ("roles.addUserToRole", {"roleId": "a\u0000", "username": "olive"}),
        ("users.generatePersonalAccessToken", {"tokenName": "a\u0000"}),
        (
            "users.create",
            {
                "email": "x@example.com",
                "name": "X",
                "password": PASSWORD,
                "username": "x",
                "customFields": {"k\u0000": 1},
            },
        ),
    ):
        response = await client.post(
            f"/api/v1/{method}",
            headers={**headers, "content-type": "application/json"},
            content=json.dumps(body).encode(),
        )
        detail = refused(response, 400, "invalid-params")
        assert "NUL" in detail, (method, detail)
    in_query = await client.get(
        "/api/v1/users.list", params={"query": '{"name": "a\\u0000"}'}, headers=headers
    )
    refused(in_query, 400, "error-invalid-query")
    in_url = await client.get("/api/v1/users.info?username=a%00b", headers=headers)
    assert "NUL" in refused(in_url, 400, "error-invalid-query")
    huge = await client.post(
        "/api/v1/users.create", headers=headers, content=b"{" + b" " * (3 * 1024 * 1024) + b"}"
    )
    assert huge.status_code == 413 and huge.json()["success"] is False


async def test_a_wrong_code_is_totp_invalid(
    client: httpx.AsyncClient, directory: Directory, clock: ShiftableClock
) -> None:
    await directory.create("zoe", password=PASSWORD)
    await client.post("/api/v1/auth/login", json={"login": "zoe", "password": PASSWORD})
    setup = await client.post("/api/v1/me/two-factor/setup", json={"password": PASSWORD})
    code = pyotp.TOTP(setup.json()["secret"]).at(clock.now())
    assert (
        await client.post("/api/v1/me/two-factor/confirm", json={"code": code})
    ).status_code == 200
    client.cookies.clear()
    wrong = await client.post(
        "/api/v1/login", json={"user": "zoe", "password": PASSWORD, "code": "000000"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "totp-invalid"


async def test_token_rotation_keeps_restrictions_and_deactivation_ends_tokens(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.create("zoe", password=PASSWORD)
    data = await login(client, "zoe")
    session = {"X-Auth-Token": data["authToken"], "X-User-Id": data["userId"]}
    # A restricted, expiring token, made natively (signed in by cookie).
    await client.post("/api/v1/auth/login", json={"login": "zoe", "password": PASSWORD})
    narrow = await client.post(
        "/api/v1/me/tokens",
        json={"name": "narrow", "permissions": ["profile.edit"], "expires_in_days": 1},
    )
    client.cookies.clear()
    assert narrow.status_code == 201, narrow.text
    before = narrow.json()
    renewed = await client.post(
        "/api/v1/users.regeneratePersonalAccessToken", headers=session, json={"tokenName": "narrow"}
    )
    assert renewed.status_code == 200, renewed.text
    tokens = (
        await client.get(
            "/api/v1/users/" + data["userId"] + "/tokens", headers=directory.owner.headers
        )
    ).json()["items"]
    live = [t for t in tokens if t["name"] == "narrow" and t["revoked_at"] is None]
    assert len(live) == 1
    assert live[0]["permissions"] == ["profile.edit"]
    assert live[0]["expires_at"] == before["token"]["expires_at"]

    # Deactivating zoe ends her personal access tokens and logins alike.
    by_token = {"X-Auth-Token": renewed.json()["token"], "X-User-Id": data["userId"]}
    assert (await client.get("/api/v1/me", headers=by_token)).status_code == 200
    off = await client.post(
        "/api/v1/users.setActiveStatus",
        headers=rc(directory.owner),
        json={"userId": data["userId"], "activeStatus": False},
    )
    assert off.status_code == 200, off.text
    refused(await client.get("/api/v1/me", headers=by_token), 401)
    refused(await client.get("/api/v1/me", headers=session), 401)


async def test_a_password_and_set_random_password_conflict(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    both = await client.post(
        "/api/v1/users.create",
        headers=rc(directory.owner),
        json={
            "email": "r@example.com",
            "name": "R",
            "username": "rand",
            "password": PASSWORD,
            "setRandomPassword": True,
        },
    )
    assert "setRandomPassword" in refused(both, 400, "invalid-params")
