"""Invitations by email, invite links, and joining through either (API and the /join page)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.conftest import Account, Directory, ShiftableClock, queued_emails
from userdesk.db import Database
from userdesk.models import AuditEntry, Invitation, InviteLink, OutboxMessage, User

PASSWORD = "a long enough passphrase"


async def _invite(
    client: httpx.AsyncClient, actor: Account, emails: Any, **body: Any
) -> httpx.Response:
    return await client.post(
        "/api/v1/invitations", json={"emails": emails, **body}, headers=actor.headers
    )


async def _invited(
    client: httpx.AsyncClient, actor: Account, emails: Any, **body: Any
) -> list[dict[str, Any]]:
    response = await _invite(client, actor, emails, **body)
    assert response.status_code == 200, response.text
    return response.json()["results"]


async def _join_links(database: Database, to: str | None = None) -> list[str]:
    """The join links of the queued invitation emails (to this address), oldest first."""
    return [
        email["secrets"]["link"]
        for email in await queued_emails(database, "invitation")
        if to is None or email["to"] == to
    ]


def _token(url: str) -> str:
    prefix = "http://userdesk.test/join/"
    assert url.startswith(prefix), url
    return url.removeprefix(prefix)


async def _seats(client: httpx.AsyncClient, owner: Account) -> int:
    response = await client.get("/api/v1/seats", headers=owner.headers)
    assert response.status_code == 200, response.text
    return int(response.json()["used"])


async def _set(client: httpx.AsyncClient, owner: Account, **settings: Any) -> None:
    response = await client.patch("/api/v1/settings", json=settings, headers=owner.headers)
    assert response.status_code == 200, response.text


async def _list(client: httpx.AsyncClient, owner: Account, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/invitations", params=params, headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _links(client: httpx.AsyncClient, owner: Account, **body: Any) -> list[dict[str, Any]]:
    response = await client.post("/api/v1/invite-links", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()["links"]


async def _join(
    client: httpx.AsyncClient, token: str, username: str, **body: Any
) -> httpx.Response:
    payload = {"name": username.title(), "username": username, "password": PASSWORD, **body}
    return await client.post(f"/api/v1/join/{token}", json=payload)


def _assert_invalid(response: httpx.Response, word: str) -> None:
    assert response.status_code == 410, response.text
    body = response.json()
    assert body["code"] == "invitation_invalid"
    assert word in body["detail"]


async def _count(database: Database, model: Any) -> int:
    async with database.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _audit(client: httpx.AsyncClient, owner: Account, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params=params, headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_addresses_are_split_on_commas_semicolons_spaces_and_line_breaks(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    results = await _invited(
        client,
        owner,
        " ann@example.com, bob@example.com;cy@example.com\n\r\ndee@example.com\t"
        "  eve@example.com ,, ;\n",
    )
    assert [(r["email"], r["status"]) for r in results] == [
        ("ann@example.com", "invited"),
        ("bob@example.com", "invited"),
        ("cy@example.com", "invited"),
        ("dee@example.com", "invited"),
        ("eve@example.com", "invited"),
    ]
    listed = await _invited(
        client, owner, ["fay@example.com", "gil@example.com; hal@example.com", ""]
    )
    assert [r["email"] for r in listed] == ["fay@example.com", "gil@example.com", "hal@example.com"]
    assert {e["to"] for e in await queued_emails(database, "invitation")} == {
        f"{n}@example.com" for n in ("ann", "bob", "cy", "dee", "eve", "fay", "gil", "hal")
    }
    for blank in ("", " ,; \n", []):
        response = await _invite(client, owner, blank)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "emails"


async def test_every_result_status_in_one_request(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    gone = await directory.create("gone")
    await client.post(f"/api/v1/users/{gone['id']}/deactivate", headers=owner.headers)
    await _invited(client, owner, "open@example.com")
    response = await _invite(
        client,
        owner,
        "new@example.com, not-an-address, gone@example.com, OLIVE@example.com, "
        "open@example.com, New@Example.com",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["warning"] and "not configured" in body["warning"]
    statuses = [(r["email"], r["status"]) for r in body["results"]]
    assert statuses == [
        ("new@example.com", "invited"),
        ("not-an-address", "invalid"),
        ("gone@example.com", "member"),
        ("OLIVE@example.com", "member"),
        ("open@example.com", "reinvited"),
        ("New@example.com", "invalid"),
    ]
    reasons = [r["reason"] for r in body["results"]]
    assert "not a valid email address" in reasons[1]
    assert reasons[5] == "duplicate in this request"
    assert reasons[0] is None and reasons[4] is None
    emails = await queued_emails(database, "invitation")
    assert [e["to"] for e in emails] == ["open@example.com", "new@example.com", "open@example.com"]
    assert emails[1]["context"]["invited_by"] == "Olive Owner"
    assert emails[1]["context"]["roles"] == ["user"]
    assert emails[1]["context"]["email"] == "new@example.com"
    assert "expires_at" in emails[1]["context"]
    assert await _count(database, Invitation) == 2


async def test_more_than_500_addresses_are_refused(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    many = ",".join(f"p{i}@example.com" for i in range(501))
    response = await _invite(client, owner, many)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "emails"
    assert await _count(database, Invitation) == 0


async def test_open_invitations_hold_seats_until_revoked_expired_or_accepted(
    client: httpx.AsyncClient, owner: Account, database: Database, clock: ShiftableClock
) -> None:
    assert await _seats(client, owner) == 1
    await _invited(client, owner, "a@example.com b@example.com c@example.com")
    assert await _seats(client, owner) == 4
    pending = (await _list(client, owner, status="pending"))["items"]
    revoked = next(i for i in pending if i["email"] == "a@example.com")
    response = await client.delete(f"/api/v1/invitations/{revoked['id']}", headers=owner.headers)
    assert response.status_code == 204, response.text
    assert await _seats(client, owner) == 3
    joined = await _join(client, _token((await _join_links(database, "b@example.com"))[0]), "bee")
    assert joined.status_code == 201, joined.text
    assert await _seats(client, owner) == 3
    clock.advance(timedelta(days=8))
    assert await _seats(client, owner) == 2
    _assert_invalid(
        await _join(client, _token((await _join_links(database, "c@example.com"))[0]), "cee"),
        "expired",
    )


async def test_inviting_beyond_the_seat_limit_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await _set(client, owner, seat_limit=3)
    await _invited(client, owner, "a@example.com")
    before = await _count(database, AuditEntry)
    refused = await _invite(client, owner, "b@example.com c@example.com a@example.com")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "seat_limit_reached"
    assert await _count(database, Invitation) == 1
    assert await _count(database, AuditEntry) == before
    assert len(await _join_links(database)) == 1
    creating = await client.post(
        "/api/v1/users",
        json={"name": "X", "username": "x1", "email": "x1@example.com"},
        headers=owner.headers,
    )
    assert creating.status_code == 200 or creating.status_code == 201, creating.text
    # Full now (owner, a's invitation, x1): a reinvite needs no new seat, a new address does.
    results = await _invited(client, owner, "a@example.com")
    assert results[0]["status"] == "reinvited"
    assert (await _invite(client, owner, "d@example.com")).status_code == 409
    lowering = await client.patch("/api/v1/settings", json={"seat_limit": 2}, headers=owner.headers)
    assert lowering.status_code == 409


async def test_roles_need_the_right_to_grant_them(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    manager = await directory.account("mia", roles=["user-manager"])
    member = await directory.account("max")
    refused = await _invite(client, manager, "a@example.com", roles=["admin"])
    assert refused.status_code == 403, refused.text
    assert await _count(database, Invitation) == 0
    assert (await _invite(client, member, "a@example.com")).status_code == 403
    unknown = await _invite(client, owner, "a@example.com", roles=["no-such-role"])
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "roles"
    granted = await _invited(client, manager, "a@example.com", roles=["user-manager", "user"])
    assert granted[0]["status"] == "invited"
    owner_invite = await _invited(client, owner, "boss@example.com", roles=["owner"])
    assert owner_invite[0]["status"] == "invited"
    items = (await _list(client, owner))["items"]
    boss = next(i for i in items if i["email"] == "boss@example.com")
    assert boss["roles"] == ["owner"]
    denied = await client.delete(f"/api/v1/invitations/{boss['id']}", headers=manager.headers)
    assert denied.status_code == 403
    resent = await client.post(f"/api/v1/invitations/{boss['id']}/resend", headers=manager.headers)
    assert resent.status_code == 403
    assert (await client.get("/api/v1/invitations", headers=member.headers)).status_code == 403
    joined = await _join(client, _token((await _join_links(database, "a@example.com"))[0]), "ada")
    assert joined.status_code == 201, joined.text
    assert joined.json()["user"]["roles"] == ["user", "user-manager"]


async def test_resend_replaces_the_link_and_renews_the_expiry(
    client: httpx.AsyncClient, owner: Account, database: Database, clock: ShiftableClock
) -> None:
    await _invited(client, owner, "ann@example.com")
    first = (await _list(client, owner))["items"][0]
    old_token = _token((await _join_links(database))[0])
    clock.advance(timedelta(days=8))
    assert (await _list(client, owner))["items"][0]["status"] == "expired"
    resent = await client.post(f"/api/v1/invitations/{first['id']}/resend", headers=owner.headers)
    assert resent.status_code == 200, resent.text
    again = resent.json()["invitation"]
    assert again["status"] == "pending" and again["sent_count"] == 2
    assert again["expires_at"] > first["expires_at"]
    assert resent.json()["warning"]
    links = await _join_links(database)
    assert len(links) == 2
    _assert_invalid(await client.get(f"/api/v1/join/{old_token}"), "not valid")
    info = await client.get(f"/api/v1/join/{_token(links[1])}")
    assert info.status_code == 200, info.text
    assert (await _join(client, _token(links[1]), "ann")).status_code == 201
    done = await client.post(f"/api/v1/invitations/{first['id']}/resend", headers=owner.headers)
    assert done.status_code == 409
    assert (
        await client.delete(f"/api/v1/invitations/{first['id']}", headers=owner.headers)
    ).status_code == 409
    missing = await client.post("/api/v1/invitations/nope/resend", headers=owner.headers)
    assert missing.status_code == 404


async def test_the_list_filters_by_status_and_pages_newest_first(
    client: httpx.AsyncClient, owner: Account, database: Database, clock: ShiftableClock
) -> None:
    await _invited(client, owner, "old@example.com")
    clock.advance(timedelta(days=8))
    await _invited(client, owner, "gone@example.com acc@example.com open@example.com")
    items = (await _list(client, owner))["items"]
    assert [i["email"] for i in items] == [
        "open@example.com",
        "acc@example.com",
        "gone@example.com",
        "old@example.com",
    ]
    by_email = {i["email"]: i for i in items}
    assert by_email["open@example.com"]["invited_by"]["username"] == "olive"
    await client.delete(
        f"/api/v1/invitations/{by_email['gone@example.com']['id']}", headers=owner.headers
    )
    link = (await _join_links(database, "acc@example.com"))[0]
    assert (await _join(client, _token(link), "acc")).status_code == 201
    for status, expected in (
        ("pending", ["open@example.com"]),
        ("accepted", ["acc@example.com"]),
        ("revoked", ["gone@example.com"]),
        ("expired", ["old@example.com"]),
    ):
        page = await _list(client, owner, status=status)
        assert [i["email"] for i in page["items"]] == expected, status
        assert all(i["status"] == status for i in page["items"])
    accepted = (await _list(client, owner, status="accepted"))["items"][0]
    assert accepted["accepted_at"] is not None
    first = await _list(client, owner, limit=3)
    assert len(first["items"]) == 3 and first["next_cursor"]
    rest = await _list(client, owner, limit=3, cursor=first["next_cursor"])
    assert [i["email"] for i in rest["items"]] == ["old@example.com"]
    assert rest["next_cursor"] is None
    bad = await client.get("/api/v1/invitations", params={"status": "lost"}, headers=owner.headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"
    bad_cursor = await client.get(
        "/api/v1/invitations", params={"cursor": "garbage"}, headers=owner.headers
    )
    assert bad_cursor.status_code == 422


async def test_an_invite_link_with_max_uses_two_refuses_the_third_join(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    links = await _links(client, owner, max_uses=2, count=2, expires_in_days=3)
    assert len(links) == 2
    link = links[0]
    assert link["max_uses"] == 2 and link["uses"] == 0 and link["roles"] == ["user"]
    token = _token(link["url"])
    assert token.startswith("udi_")
    info = await client.get(f"/api/v1/join/{token}")
    assert info.status_code == 200, info.text
    assert info.json()["kind"] == "link" and info.json()["email"] is None
    for name in ("one", "two"):
        response = await _join(client, token, name, email=f"{name}@example.com")
        assert response.status_code == 201, response.text
        assert response.json()["user"]["email_verified"] is False
    _assert_invalid(await _join(client, token, "three", email="three@example.com"), "used")
    listed = await client.get("/api/v1/invite-links", headers=owner.headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [i["status"] for i in items] == ["active", "used_up"]
    assert items[1]["uses"] == 2
    assert "url" not in items[0] and token not in listed.text
    used_up = await client.get(
        "/api/v1/invite-links", params={"status": "used_up"}, headers=owner.headers
    )
    assert [i["id"] for i in used_up.json()["items"]] == [link["id"]]
    assert await _count(database, User) == 3


async def test_concurrent_joins_never_exceed_max_uses_or_seats(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    (link,) = await _links(client, owner, max_uses=3)
    token = _token(link["url"])
    await _set(client, owner, seat_limit=3)
    responses = await asyncio.gather(
        *(_join(client, token, f"racer{n}", email=f"racer{n}@example.com") for n in range(10))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 201] + [409] * 8, statuses
    await _set(client, owner, seat_limit=None)
    responses = await asyncio.gather(
        *(_join(client, token, f"late{n}", email=f"late{n}@example.com") for n in range(5))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [410] * 4, statuses
    items = (await client.get("/api/v1/invite-links", headers=owner.headers)).json()["items"]
    assert items[0]["uses"] == 3 and items[0]["status"] == "used_up"
    assert await _count(database, User) == 4


async def test_invite_link_input_is_checked(client: httpx.AsyncClient, owner: Account) -> None:
    for body, field in (
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 91}, "expires_in_days"),
        ({"max_uses": 0}, "max_uses"),
        ({"max_uses": 10_001}, "max_uses"),
        ({"count": 51}, "count"),
        ({"roles": ["nope"]}, "roles"),
    ):
        response = await client.post("/api/v1/invite-links", json=body, headers=owner.headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"][0]["field"] == field


async def test_invite_links_expire_and_can_be_revoked(
    client: httpx.AsyncClient, owner: Account, clock: ShiftableClock
) -> None:
    short, kept = await _links(client, owner, expires_in_days=1, count=2)
    revoked = await client.delete(f"/api/v1/invite-links/{kept['id']}", headers=owner.headers)
    assert revoked.status_code == 204
    _assert_invalid(await client.get(f"/api/v1/join/{_token(kept['url'])}"), "withdrawn")
    clock.advance(timedelta(days=1, minutes=1))
    _assert_invalid(
        await _join(client, _token(short["url"]), "late", email="late@example.com"), "expired"
    )
    statuses = {
        i["id"]: i["status"]
        for i in (await client.get("/api/v1/invite-links", headers=owner.headers)).json()["items"]
    }
    assert statuses == {short["id"]: "expired", kept["id"]: "revoked"}
    assert (
        await client.delete("/api/v1/invite-links/nope", headers=owner.headers)
    ).status_code == 404


async def test_joining_by_invitation_makes_an_active_verified_signed_in_user(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await _invited(client, owner, "Ann@Example.com", roles=["user-manager"])
    token = _token((await _join_links(database))[0])
    info = await client.get(f"/api/v1/join/{token}")
    assert info.status_code == 200, info.text
    assert info.json()["kind"] == "invitation"
    assert info.json()["email"] == "Ann@example.com"
    assert info.json()["workspace"]
    assert info.json()["password_policy"]["min_length"] == 12
    joined = await _join(client, token, "ann", email="ann@example.com")
    assert joined.status_code == 201, joined.text
    user = joined.json()["user"]
    assert joined.json()["signed_in"] is True
    assert user["status"] == "active" and user["email_verified"] is True
    assert user["email"] == "Ann@example.com" and user["roles"] == ["user-manager"]
    assert user["created_by"] == owner.id
    assert "userdesk_session" in joined.cookies
    me = await client.get("/api/v1/me")
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "ann"
    _assert_invalid(await client.get(f"/api/v1/join/{token}"), "already accepted")
    actions = [e["action"] for e in await _audit(client, owner, target=user["id"])]
    assert {"user.created", "user.joined", "auth.signed_in"} <= set(actions)
    invitation_id = (await _list(client, owner))["items"][0]["id"]
    invitation_actions = [e["action"] for e in await _audit(client, owner, target=invitation_id)]
    assert invitation_actions == ["invitation.accepted", "invitation.sent"]


async def test_joining_by_invitation_with_another_address_is_refused(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await _invited(client, owner, "ann@example.com")
    token = _token((await _join_links(database))[0])
    response = await _join(client, token, "ann", email="someone@example.com")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "email"


async def test_joining_by_link_needs_an_email_and_leaves_it_unverified(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    (link,) = await _links(client, owner)
    token = _token(link["url"])
    missing = await _join(client, token, "lee")
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "email"
    bad = await _join(client, token, "lee", email="not an address")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "email"
    joined = await _join(client, token, "lee", email="lee@example.com")
    assert joined.status_code == 201, joined.text
    assert joined.json()["user"]["status"] == "active"
    assert (await client.get("/api/v1/me")).json()["email"] == "lee@example.com"
    links = (await client.get("/api/v1/invite-links", headers=owner.headers)).json()["items"]
    assert links[0]["uses"] == 1 and links[0]["status"] == "active"


async def test_a_link_join_waits_for_verification_when_the_workspace_requires_it(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await _set(client, owner, email_verification_required=True)
    (link,) = await _links(client, owner)
    joined = await _join(client, _token(link["url"]), "vic", email="vic@example.com")
    assert joined.status_code == 201, joined.text
    assert joined.json()["signed_in"] is False
    assert "userdesk_session" not in joined.cookies
    assert [e["to"] for e in await queued_emails(database, "email_verification")] == [
        "vic@example.com"
    ]


async def test_a_failed_join_writes_nothing(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    await directory.create("taken")
    await _invited(client, owner, "ann@example.com")
    (link,) = await _links(client, owner, max_uses=1)
    token = _token((await _join_links(database))[0])
    users = await _count(database, User)
    weak = await _join(client, token, "ann", password="password")
    assert weak.status_code == 422, weak.text
    assert {e["field"] for e in weak.json()["errors"]} == {"password"}
    duplicate = await _join(client, token, "TAKEN")
    assert duplicate.status_code == 409, duplicate.text
    assert duplicate.json()["field"] == "username"
    by_link = await _join(client, _token(link["url"]), "taken", email="new@example.com")
    assert by_link.status_code == 409
    taken_email = await _join(client, _token(link["url"]), "newbie", email="taken@example.com")
    assert taken_email.status_code == 409 and taken_email.json()["field"] == "email"
    assert await _count(database, User) == users
    assert (await _list(client, owner))["items"][0]["status"] == "pending"
    listed = (await client.get("/api/v1/invite-links", headers=owner.headers)).json()["items"]
    assert listed[0]["uses"] == 0
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await _join(client, token, "ann")).status_code == 201


async def test_a_link_into_a_full_workspace_is_refused(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await _set(client, owner, seat_limit=2)
    await _invited(client, owner, "inv@example.com")
    (link,) = await _links(client, owner)
    token = _token(link["url"])
    info = await client.get(f"/api/v1/join/{token}")
    assert info.status_code == 409 and info.json()["code"] == "seat_limit_reached"
    refused = await _join(client, token, "lin", email="lin@example.com")
    assert refused.status_code == 409 and refused.json()["code"] == "seat_limit_reached"
    page = await client.get(f"/join/{token}")
    assert page.status_code == 409 and "full" in page.text
    # The invitation holds its own seat: accepting it needs none more.
    invitation_token = _token((await _join_links(database))[0])
    assert (await _join(client, invitation_token, "inv")).status_code == 201
    assert await _seats(client, owner) == 2


async def test_unknown_tokens_get_the_same_answer(
    client: httpx.AsyncClient, owner: Account
) -> None:
    for token in ("udi_made-up", "x", "%3Cscript%3E"):
        _assert_invalid(await client.get(f"/api/v1/join/{token}"), "not valid")
        _assert_invalid(await _join(client, token, "who", email="who@example.com"), "not valid")


async def test_the_join_page_shows_the_form_or_why_not(
    client: httpx.AsyncClient, owner: Account, database: Database, clock: ShiftableClock
) -> None:
    await _set(client, owner, name="<script>alert(1)</script> & Co")
    await _invited(client, owner, "ann@example.com bob@example.com cy@example.com")
    tokens = {e["to"]: _token(e["secrets"]["link"]) for e in await queued_emails(database)}
    page = await client.get(f"/join/{tokens['ann@example.com']}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page.text
    assert "<script>alert(1)" not in page.text
    assert 'value="ann@example.com"' in page.text
    assert f'data-api="/api/v1/join/{tokens["ann@example.com"]}"' in page.text
    assert "at least 12 characters" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "nonce-" in page.headers["content-security-policy"]
    (link,) = await _links(client, owner)
    by_link = await client.get(f"/join/{_token(link['url'])}")
    assert by_link.status_code == 200 and 'name="email"' in by_link.text
    assert 'autocomplete="email" required' in by_link.text

    assert (await _join(client, tokens["ann@example.com"], "ann")).status_code == 201
    items = {i["email"]: i["id"] for i in (await _list(client, owner))["items"]}
    await client.delete(f"/api/v1/invitations/{items['bob@example.com']}", headers=owner.headers)
    await client.delete(f"/api/v1/invite-links/{link['id']}", headers=owner.headers)
    cases = [
        (tokens["ann@example.com"], "already accepted"),
        (tokens["bob@example.com"], "withdrawn"),
        (_token(link["url"]), "withdrawn"),
        ("udi_unknown", "not valid"),
    ]
    for token, words in cases:
        gone = await client.get(f"/join/{token}")
        assert gone.status_code == 410, (token, gone.text)
        assert words in gone.text and "<form" not in gone.text
        assert "Traceback" not in gone.text
    clock.advance(timedelta(days=8))
    expired = await client.get(f"/join/{tokens['cy@example.com']}")
    assert expired.status_code == 410 and "expired" in expired.text


async def test_no_secret_is_stored_or_logged_in_clear(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await _invited(client, owner, "ann@example.com")
    (link,) = await _links(client, owner)
    tokens = [_token((await _join_links(database))[0]), _token(link["url"])]
    assert (await _join(client, tokens[0], "ann")).status_code == 201
    assert (await _join(client, tokens[1], "bo", email="bo@example.com")).status_code == 201
    async with database.reader() as session:
        digests = set(await session.scalars(select(Invitation.digest)))
        digests |= set(await session.scalars(select(InviteLink.digest)))
        outbox = [str(row.payload) for row in await session.scalars(select(OutboxMessage))]
        audit = [str(e.changes) for e in await session.scalars(select(AuditEntry))]
    assert digests == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    for token in tokens:
        assert not any(token in text for text in outbox + audit)
    assert not any(PASSWORD in text for text in outbox + audit)


async def test_every_change_is_audited(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await _invited(client, owner, "ann@example.com bob@example.com")
    await _invited(client, owner, "ann@example.com")
    items = {i["email"]: i["id"] for i in (await _list(client, owner))["items"]}
    await client.post(
        f"/api/v1/invitations/{items['ann@example.com']}/resend", headers=owner.headers
    )
    await client.delete(f"/api/v1/invitations/{items['bob@example.com']}", headers=owner.headers)
    (link,) = await _links(client, owner, roles=["guest"])
    await client.delete(f"/api/v1/invite-links/{link['id']}", headers=owner.headers)
    ann = [e["action"] for e in await _audit(client, owner, target=items["ann@example.com"])]
    assert ann == ["invitation.resent", "invitation.resent", "invitation.sent"]
    bob = await _audit(client, owner, target=items["bob@example.com"])
    assert [e["action"] for e in bob] == ["invitation.revoked", "invitation.sent"]
    assert bob[0]["actor"]["id"] == owner.id
    assert bob[0]["changes"]["status"] == {"before": "pending", "after": "revoked"}
    made = await _audit(client, owner, target=link["id"])
    assert [e["action"] for e in made] == ["invite_link.revoked", "invite_link.created"]
    assert made[1]["changes"]["roles"]["after"] == ["guest"]


async def test_creating_the_invited_user_by_hand_closes_the_invitation(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    sent = await client.post(
        "/api/v1/invitations", json={"emails": ["hand@example.com"]}, headers=owner.headers
    )
    assert sent.json()["results"][0]["status"] == "invited"
    await directory.create("hand", email="Hand@Example.com")
    pending = await client.get("/api/v1/invitations?status=pending", headers=owner.headers)
    assert pending.json()["items"] == []
    revoked = await client.get("/api/v1/invitations?status=revoked", headers=owner.headers)
    assert [i["email"] for i in revoked.json()["items"]] == ["hand@example.com"]
