"""Emailed one-time links: forgot password, email verification, own email change."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from tests.conftest import Account, Directory, ShiftableClock, queued_emails
from userdesk.db import Database
from userdesk.models import AuditEntry, OneTimeLink, OutboxMessage

PASSWORD = "a long enough passphrase"
NEW_PASSWORD = "another fine passphrase"
RESET_SENT = {"detail": "if the account exists, a reset link was sent to its email address"}
VERIFICATION_SENT = {
    "detail": "if the address belongs to an account awaiting verification, a link was sent to it"
}


async def _forgot(client: httpx.AsyncClient, login: str) -> httpx.Response:
    return await client.post("/api/v1/auth/password/forgot", json={"login": login})


async def _reset(
    client: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": password}
    )


async def _login(client: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"login": login, "password": password})


async def _audit(client: httpx.AsyncClient, owner: Account, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params=params, headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def _links(database: Database, template: str, to: str | None = None) -> list[str]:
    """The links of the queued emails of this template (to this address), oldest first."""
    return [
        email["secrets"]["link"]
        for email in await queued_emails(database, template)
        if to is None or email["to"] == to
    ]


def _token(link: str) -> str:
    return link.rsplit("#token=", 1)[1]


async def _verify(client: httpx.AsyncClient, link: str) -> httpx.Response:
    return await client.post("/api/v1/auth/verify-email", json={"token": _token(link)})


def _assert_dead_link(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "link_invalid"
    assert [e["field"] for e in body["errors"]] == ["token"]


async def _require_verification(client: httpx.AsyncClient, owner: Account) -> None:
    response = await client.patch(
        "/api/v1/settings", json={"email_verification_required": True}, headers=owner.headers
    )
    assert response.status_code == 200, response.text


async def test_forgot_answers_alike_and_mails_only_a_real_account(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    fay = await directory.create("fay", password=PASSWORD)
    dee = await directory.create("dee", password=PASSWORD)
    await client.post(f"/api/v1/users/{dee['id']}/deactivate", headers=owner.headers)
    answers = [
        await _forgot(client, login) for login in ("nobody", "nobody@example.com", "dee", "FAY")
    ]
    assert {(r.status_code, r.text) for r in answers} == {(202, answers[0].text)}
    assert answers[0].json() == RESET_SENT
    [email] = await queued_emails(database, "password_reset")
    assert email["to"] == "fay@example.com"
    assert email["context"]["username"] == "fay"
    assert email["secrets"]["link"].startswith("http://userdesk.test/reset-password#token=udl_")
    [entry] = await _audit(client, owner, action="auth.password_reset_requested")
    assert entry["target"]["id"] == fay["id"]
    assert entry["actor"] == {"id": None, "name": "anonymous"}
    assert entry["ip"] == "203.0.113.7"


async def test_forgot_sends_one_link_per_account_every_few_minutes(
    client: httpx.AsyncClient, directory: Directory, database: Database, clock: ShiftableClock
) -> None:
    await directory.create("ray", password=PASSWORD)
    for login in ("ray", "ray@example.com", "ray"):
        response = await _forgot(client, login)
        assert (response.status_code, response.json()) == (202, RESET_SENT)
    assert len(await _links(database, "password_reset")) == 1
    clock.advance(timedelta(minutes=2, seconds=1))
    assert (await _forgot(client, "ray")).status_code == 202
    first, second = await _links(database, "password_reset")
    assert first != second
    # The throttle sends nothing new; the links already sent still work.
    assert (await _reset(client, _token(first))).status_code == 200


async def test_a_reset_link_works_once_and_ends_every_session_and_token(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    rex = await directory.account("rex", password=PASSWORD, require_password_change=True)
    assert (await _login(client, "rex", PASSWORD)).status_code == 200
    assert (await client.get("/api/v1/me")).status_code == 200
    assert (await client.get("/api/v1/me", headers=rex.headers)).status_code == 200
    await _forgot(client, "rex")
    [link] = await _links(database, "password_reset")
    token = _token(link)

    check = await client.post("/api/v1/auth/password/reset/check", json={"token": token})
    assert check.status_code == 200, check.text
    assert check.json()["valid"] is True
    assert check.json()["username"] == "rex"

    response = await _reset(client, token)
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert user["id"] == rex.id
    assert user["require_password_change"] is False
    assert user["email_verified"] is True
    assert "set-cookie" not in response.headers
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get("/api/v1/me", headers=rex.headers)).status_code == 401

    _assert_dead_link(await _reset(client, token, "yet another passphrase"))
    _assert_dead_link(await client.post("/api/v1/auth/password/reset/check", json={"token": token}))
    assert (await _login(client, "rex", PASSWORD)).status_code == 401
    assert (await _login(client, "rex", NEW_PASSWORD)).status_code == 200
    [entry] = await _audit(client, owner, action="auth.password_reset_completed")
    assert entry["actor"] == {"id": rex.id, "name": "rex"}
    assert entry["changes"]["password"] == {"changed": True}
    assert entry["changes"]["sessions"] == {"before": 1, "after": 0}
    assert entry["changes"]["require_password_change"] == {"before": True, "after": False}


async def test_a_reset_link_expires_after_thirty_minutes(
    client: httpx.AsyncClient, directory: Directory, database: Database, clock: ShiftableClock
) -> None:
    await directory.create("exa", password=PASSWORD)
    await _forgot(client, "exa")
    [link] = await _links(database, "password_reset")
    clock.advance(timedelta(minutes=29))
    check = await client.post("/api/v1/auth/password/reset/check", json={"token": _token(link)})
    assert check.status_code == 200, check.text
    clock.advance(timedelta(minutes=1, seconds=1))
    _assert_dead_link(await _reset(client, _token(link)))
    assert (await _login(client, "exa", PASSWORD)).status_code == 200


async def test_a_reset_link_dies_when_the_password_changes(
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    database: Database,
    clock: ShiftableClock,
) -> None:
    pat = await directory.account("pat", password=PASSWORD)
    await _forgot(client, "pat")
    changed = await client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=pat.headers,
    )
    assert changed.status_code == 200, changed.text
    clock.advance(timedelta(minutes=3))
    await _forgot(client, "pat")
    set_by_admin = await client.patch(
        f"/api/v1/users/{pat.id}", json={"password": "set by the admin"}, headers=owner.headers
    )
    assert set_by_admin.status_code == 200, set_by_admin.text
    clock.advance(timedelta(minutes=3))
    await _forgot(client, "pat")
    before_own_change, before_admin_change, after_both = await _links(database, "password_reset")
    _assert_dead_link(await _reset(client, _token(before_own_change)))
    _assert_dead_link(await _reset(client, _token(before_admin_change)))
    assert (await _reset(client, _token(after_both), "the final passphrase")).status_code == 200


async def test_a_reset_link_dies_with_the_address_it_was_sent_to_and_with_deactivation(
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    database: Database,
) -> None:
    moved = await directory.create("moved", password=PASSWORD)
    gone = await directory.create("gone", password=PASSWORD)
    await _forgot(client, "moved")
    await _forgot(client, "gone")
    to_old_address, to_gone = await _links(database, "password_reset")
    response = await client.patch(
        f"/api/v1/users/{moved['id']}",
        json={"email": "moved@elsewhere.example"},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    await client.post(f"/api/v1/users/{gone['id']}/deactivate", headers=owner.headers)
    _assert_dead_link(await _reset(client, _token(to_old_address)))
    _assert_dead_link(await _reset(client, _token(to_gone)))


async def test_a_reset_applies_the_password_policy_and_keeps_the_link(
    client: httpx.AsyncClient, directory: Directory, database: Database
) -> None:
    await directory.create("pol", password=PASSWORD)
    await _forgot(client, "pol")
    [link] = await _links(database, "password_reset")
    refused = await _reset(client, _token(link), "password1234")
    assert refused.status_code == 422, refused.text
    assert {e["field"] for e in refused.json()["errors"]} == {"new_password"}
    assert "password_common" in {e["code"] for e in refused.json()["errors"]}
    assert (await _login(client, "pol", PASSWORD)).status_code == 200
    assert (await _reset(client, _token(link))).status_code == 200


async def test_bad_input_is_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    cases = [
        ("/api/v1/auth/password/forgot", {}, "login"),
        ("/api/v1/auth/password/forgot", {"login": ""}, "login"),
        ("/api/v1/auth/password/reset", {"token": "x"}, "new_password"),
        ("/api/v1/auth/password/reset", {"token": "", "new_password": PASSWORD}, "token"),
        ("/api/v1/auth/verify-email/request", {"email": "not an address"}, "email"),
        ("/api/v1/auth/verify-email", {"token": "x" * 201}, "token"),
    ]
    for path, body, field in cases:
        response = await client.post(path, json=body)
        assert response.status_code == 422, (path, response.text)
        assert field in {e["field"] for e in response.json()["errors"]}, (path, response.text)
    _assert_dead_link(await _reset(client, "udl_made-up"))
    _assert_dead_link(await client.post("/api/v1/auth/verify-email", json={"token": "udl_x"}))


async def test_no_link_secret_is_stored_or_logged_in_clear(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    sam = await directory.account("sam", password=PASSWORD)
    await _forgot(client, "sam")
    await client.post("/api/v1/me/email/verification", headers=sam.headers)
    tokens = [_token(link) for link in await _links(database, "password_reset")]
    tokens += [_token(link) for link in await _links(database, "email_verification")]
    assert len(tokens) == 2
    assert (await client.post("/api/v1/auth/verify-email", json={"token": tokens[1]})).is_success
    assert (await _reset(client, tokens[0])).status_code == 200
    async with database.reader() as session:
        outbox = [str(row.payload) for row in await session.scalars(select(OutboxMessage))]
        digests = set(await session.scalars(select(OneTimeLink.digest)))
        audit = [str(entry.changes) for entry in await session.scalars(select(AuditEntry))]
    assert digests == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    for token in tokens:
        assert not any(token in text for text in outbox + audit)
    assert not any(NEW_PASSWORD in text for text in outbox + audit)
    actions = {entry["action"] for entry in await _audit(client, owner, target=sam.id)}
    assert {"auth.password_reset_completed", "user.email_verified"} <= actions


async def test_own_verification_link_verifies_once(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    val = await directory.account("val")
    assert (await client.get("/api/v1/me", headers=val.headers)).json()["email_verified"] is False
    sent = await client.post("/api/v1/me/email/verification", headers=val.headers)
    assert sent.status_code == 202, sent.text
    [email] = await queued_emails(database, "email_verification")
    assert email["to"] == "val@example.com"
    assert email["secrets"]["link"].startswith("http://userdesk.test/verify-email#token=udl_")
    assert "sealed:v1:" in email["sealed"]["link"]
    token = _token(email["secrets"]["link"])

    verified = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["user"]["email_verified"] is True
    assert (await client.get("/api/v1/me", headers=val.headers)).json()["email_verified"] is True
    _assert_dead_link(await client.post("/api/v1/auth/verify-email", json={"token": token}))
    again = await client.post("/api/v1/me/email/verification", headers=val.headers)
    assert again.status_code == 409
    assert again.json()["code"] == "email_already_verified"
    [entry] = await _audit(client, owner, action="user.email_verified")
    assert entry["target"]["id"] == val.id
    assert entry["changes"] == {"email_verified": {"before": False, "after": True}}


async def test_admins_resend_verification_within_their_rights_and_the_throttle(
    client: httpx.AsyncClient, owner: Account, directory: Directory, clock: ShiftableClock
) -> None:
    una = await directory.create("una")
    bob = await directory.account("bob")
    boss = await directory.account("boss", roles=["owner"])
    path = f"/api/v1/users/{una['id']}/email/verification"
    refused = await client.post(path, headers=bob.headers)
    assert refused.status_code == 403
    assert refused.json()["permission"] == "users.edit"
    manager = await directory.account("mia", roles=["user-manager"])
    outranked = await client.post(
        f"/api/v1/users/{boss.id}/email/verification", headers=manager.headers
    )
    assert outranked.status_code == 403
    assert (await client.post(path, headers=owner.headers)).status_code == 202
    throttled = await client.post(path, headers=owner.headers)
    assert throttled.status_code == 429
    assert 0 < throttled.json()["retry_after"] <= 120
    clock.advance(timedelta(minutes=2, seconds=1))
    assert (await client.post(path, headers=owner.headers)).status_code == 202
    missing = await client.post(
        "/api/v1/users/no-such-user/email/verification", headers=owner.headers
    )
    assert missing.status_code == 404


async def test_a_verification_link_expires_after_two_days(
    client: httpx.AsyncClient, directory: Directory, database: Database, clock: ShiftableClock
) -> None:
    eli = await directory.account("eli")
    await client.post("/api/v1/me/email/verification", headers=eli.headers)
    [link] = await _links(database, "email_verification")
    clock.advance(timedelta(hours=48, seconds=1))
    _assert_dead_link(await client.post("/api/v1/auth/verify-email", json={"token": _token(link)}))
    assert (await client.get("/api/v1/me", headers=eli.headers)).json()["email_verified"] is False


async def test_a_workspace_requiring_verified_emails_mails_new_users_who_verify_then_sign_in(
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    database: Database,
    clock: ShiftableClock,
) -> None:
    await _require_verification(client, owner)
    await directory.create("already", password=PASSWORD, email_verified=True)
    kim = await directory.create("kim", password=PASSWORD)
    [created_link] = await _links(database, "email_verification")
    [entry] = await _audit(client, owner, action="user.created", target=kim["id"])
    assert entry["changes"]["verification_email"] == {"before": None, "after": "kim@example.com"}
    refused = await _login(client, "kim", PASSWORD)
    assert refused.status_code == 401
    assert refused.json()["code"] == "email_unverified"

    # The public request answers alike for every address; kim was mailed a moment ago.
    for address in ("kim@example.com", "nobody@example.com", "already@example.com"):
        response = await client.post("/api/v1/auth/verify-email/request", json={"email": address})
        assert (response.status_code, response.json()) == (202, VERIFICATION_SENT)
    assert await _links(database, "email_verification") == [created_link]
    clock.advance(timedelta(minutes=2, seconds=1))
    for address in ("KIM@example.com", "already@example.com"):
        await client.post("/api/v1/auth/verify-email/request", json={"email": address})
    [first, resent] = await _links(database, "email_verification")
    assert first == created_link
    assert resent != created_link
    assert (await _links(database, "email_verification", "kim@example.com"))[-1] == resent

    verified = await _verify(client, created_link)
    assert verified.status_code == 200, verified.text
    assert (await _login(client, "kim", PASSWORD)).status_code == 200


async def test_an_admin_email_change_sends_a_new_link_and_kills_the_old_ones(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    await _require_verification(client, owner)
    lee = await directory.create("lee", password=PASSWORD)
    [old_link] = await _links(database, "email_verification")
    response = await client.patch(
        f"/api/v1/users/{lee['id']}", json={"email": "lee@new.example"}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    [new_link] = await _links(database, "email_verification", "lee@new.example")
    _assert_dead_link(
        await client.post("/api/v1/auth/verify-email", json={"token": _token(old_link)})
    )
    verified = await client.post("/api/v1/auth/verify-email", json={"token": _token(new_link)})
    assert verified.status_code == 200, verified.text
    assert verified.json()["user"]["email"] == "lee@new.example"
    assert verified.json()["user"]["email_verified"] is True
    # Verified by the admin in the same request: nothing to send.
    await client.patch(
        f"/api/v1/users/{lee['id']}",
        json={"email": "lee@third.example", "email_verified": True},
        headers=owner.headers,
    )
    assert await _links(database, "email_verification", "lee@third.example") == []


async def test_an_own_email_change_applies_only_when_the_link_is_followed(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    eve = await directory.account("eve", password=PASSWORD, email_verified=True)
    await directory.create("taken", email="taken@example.com")
    change = "/api/v1/me/email"
    wrong = await client.post(
        change, json={"email": "eve@new.example", "password": "nope"}, headers=eve.headers
    )
    assert (wrong.status_code, wrong.json()["errors"][0]["field"]) == (422, "password")
    taken = await client.post(
        change, json={"email": "Taken@example.com", "password": PASSWORD}, headers=eve.headers
    )
    assert (taken.status_code, taken.json()["field"]) == (409, "email")
    invalid = await client.post(
        change, json={"email": "not an address", "password": PASSWORD}, headers=eve.headers
    )
    assert (invalid.status_code, invalid.json()["errors"][0]["field"]) == (422, "email")

    asked = await client.post(
        change, json={"email": "eve@new.example", "password": PASSWORD}, headers=eve.headers
    )
    assert asked.status_code == 202, asked.text
    me = (await client.get("/api/v1/me", headers=eve.headers)).json()
    assert (me["email"], me["email_verified"]) == ("eve@example.com", True)
    [email] = await queued_emails(database, "email_change")
    assert email["to"] == "eve@new.example"
    assert (await _login(client, "eve@new.example", PASSWORD)).status_code == 401

    followed = await client.post(
        "/api/v1/auth/verify-email", json={"token": _token(email["secrets"]["link"])}
    )
    assert followed.status_code == 200, followed.text
    me = (await client.get("/api/v1/me", headers=eve.headers)).json()
    assert (me["email"], me["email_verified"]) == ("eve@new.example", True)
    assert (await _login(client, "eve@new.example", PASSWORD)).status_code == 200
    found = await client.get("/api/v1/users", params={"q": "eve@new"}, headers=owner.headers)
    assert [u["username"] for u in found.json()["items"]] == ["eve"]
    [notice] = await queued_emails(database, "email_changed")
    assert notice["to"] == "eve@example.com"
    assert notice["context"]["new_email"] == "eve@new.example"
    [entry] = await _audit(client, owner, action="user.updated", target=eve.id)
    assert entry["changes"]["email"] == {"before": "eve@example.com", "after": "eve@new.example"}
    [sent] = await _audit(client, owner, action="user.email_verification_sent", target=eve.id)
    assert sent["changes"] == {
        "email_change": {"before": "eve@example.com", "after": "eve@new.example"}
    }


async def test_an_address_taken_before_the_link_is_followed_is_a_conflict(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    ivy = await directory.account("ivy", password=PASSWORD)
    asked = await client.post(
        "/api/v1/me/email",
        json={"email": "wanted@example.com", "password": PASSWORD},
        headers=ivy.headers,
    )
    assert asked.status_code == 202, asked.text
    await directory.create("quick", email="Wanted@example.com")
    [link] = await _links(database, "email_change")
    response = await client.post("/api/v1/auth/verify-email", json={"token": _token(link)})
    assert response.status_code == 409, response.text
    assert response.json()["field"] == "email"
    assert (await client.get("/api/v1/me", headers=ivy.headers)).json()[
        "email"
    ] == "ivy@example.com"


async def test_a_newer_email_change_replaces_a_pending_one(
    client: httpx.AsyncClient, directory: Directory, database: Database, clock: ShiftableClock
) -> None:
    gus = await directory.account("gus", password=PASSWORD)

    async def ask(address: str) -> httpx.Response:
        return await client.post(
            "/api/v1/me/email", json={"email": address, "password": PASSWORD}, headers=gus.headers
        )

    assert (await ask("gus@first.example")).status_code == 202
    throttled = await ask("gus@second.example")
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == str(throttled.json()["retry_after"])
    clock.advance(timedelta(minutes=2, seconds=1))
    assert (await ask("gus@second.example")).status_code == 202
    first, second = await _links(database, "email_change")
    _assert_dead_link(await _verify(client, first))
    response = await _verify(client, second)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["email"] == "gus@second.example"


async def test_the_pages_links_lead_to_are_served_with_the_policy_and_no_token_in_the_url(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await client.patch(
        "/api/v1/settings",
        json={"name": 'Acme "<b>&', "password_require_digit": True},
        headers=owner.headers,
    )
    reset = await client.get("/reset-password")
    assert reset.status_code == 200
    assert reset.headers["content-type"].startswith("text/html")
    assert "a digit" in reset.text and "at least 12 characters" in reset.text
    assert "<b>&" not in reset.text and "Acme &#34;&lt;b&gt;&amp;" in reset.text
    nonce = reset.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in reset.text
    assert "location.hash" in reset.text and "/api/v1/auth/password/reset/check" in reset.text
    assert reset.headers["referrer-policy"] == "no-referrer"
    verify = await client.get("/verify-email")
    assert verify.status_code == 200 and "/api/v1/auth/verify-email" in verify.text
    assert "<b>&" not in verify.text
