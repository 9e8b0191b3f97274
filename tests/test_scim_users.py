"""SCIM 2.0 at /scim/v2, driven over HTTP as identity providers drive it, on SQLite and
PostgreSQL: discovery, creating, reading, filtering, patching (with what Entra ID and Okta
really send), replacing and deleting users, ETags, errors in the SCIM error schema, and the
console's rules (seats, the last owner, permissions, audit) holding for SCIM too."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import Account, Directory, mint_token
from userdesk.actions.context import Actor
from userdesk.actions.tokens import create_token
from userdesk.db import Database
from userdesk.models import AuditEntry

SCIM = "/scim/v2"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def scim_user(username: str, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": [USER],
        "userName": username,
        "emails": [{"value": f"{username}@corp.example", "type": "work", "primary": True}],
        "active": True,
        **extra,
    }


def is_error(response: httpx.Response, status: int, scim_type: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status), body
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return str(body["detail"])


async def create(client: httpx.AsyncClient, owner: Account, body: dict[str, Any]) -> Any:
    response = await client.post(f"{SCIM}/Users", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def patch(
    client: httpx.AsyncClient, owner: Account, user_id: str, *operations: dict[str, Any]
) -> httpx.Response:
    return await client.patch(
        f"{SCIM}/Users/{user_id}",
        json={"schemas": [PATCH], "Operations": list(operations)},
        headers=owner.headers,
    )


async def native(client: httpx.AsyncClient, owner: Account, user_id: str) -> Any:
    response = await client.get(f"/api/v1/users/{user_id}", headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def restricted(database: Database, name: str, permissions: list[str]) -> dict[str, str]:
    """The headers of a token of the owner's, narrowed to `permissions`."""
    async with database.transaction() as session:
        _, secret = await create_token(
            session,
            actor=Actor.system("test"),
            username="olive",
            name=name,
            permissions=permissions,
        )
    return {"Authorization": f"Bearer {secret}"}


# --- discovery and authentication ------------------------------------------------------------


async def test_discovery_describes_what_is_supported(
    client: httpx.AsyncClient, owner: Account
) -> None:
    config = await client.get(f"{SCIM}/ServiceProviderConfig", headers=owner.headers)
    assert config.status_code == 200
    assert config.headers["content-type"].startswith("application/scim+json")
    body = config.json()
    assert body["patch"]["supported"] and body["filter"]["supported"]
    assert body["filter"]["maxResults"] == 1000
    assert body["sort"]["supported"] and body["etag"]["supported"]
    assert not body["bulk"]["supported"]
    assert body["authenticationSchemes"][0]["type"] == "oauthbearertoken"

    types = (await client.get(f"{SCIM}/ResourceTypes", headers=owner.headers)).json()
    assert [t["id"] for t in types["Resources"]] == ["User", "Group"]
    user_type = (await client.get(f"{SCIM}/ResourceTypes/User", headers=owner.headers)).json()
    assert user_type["endpoint"] == "/Users"
    assert user_type["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]

    schema = (await client.get(f"{SCIM}/Schemas/{USER}", headers=owner.headers)).json()
    attributes = {a["name"]: a for a in schema["attributes"]}
    # Only what userdesk stores is advertised.
    assert "phoneNumbers" not in attributes and "addresses" not in attributes
    assert {s["name"] for s in attributes["emails"]["subAttributes"]} == {
        "value",
        "type",
        "primary",
    }
    assert attributes["emails"]["required"] and attributes["userName"]["required"]
    assert attributes["password"]["returned"] == "never"
    assert attributes["groups"]["mutability"] == "readOnly"
    enterprise = (await client.get(f"{SCIM}/Schemas/{ENTERPRISE}", headers=owner.headers)).json()
    assert {a["name"] for a in enterprise["attributes"]} == {
        "employeeNumber",
        "organization",
        "department",
        "manager",
    }
    listed = (await client.get(f"{SCIM}/Schemas", headers=owner.headers)).json()
    assert listed["totalResults"] == 3

    is_error(await client.get(f"{SCIM}/Schemas/urn:nope", headers=owner.headers), 404)
    is_error(await client.get(f"{SCIM}/ResourceTypes/Robots", headers=owner.headers), 404)
    is_error(await client.get(f"{SCIM}/Nothing", headers=owner.headers), 404)
    is_error(await client.post(f"{SCIM}/Schemas", json={}, headers=owner.headers), 405)
    is_error(await client.post(f"{SCIM}/.search", json={}, headers=owner.headers), 501)


async def test_only_a_token_with_the_provisioning_permission_gets_in(
    client: httpx.AsyncClient, database: Database, owner: Account, directory: Directory
) -> None:
    is_error(await client.get(f"{SCIM}/Users"), 401)
    bad = await client.get(f"{SCIM}/Users", headers={"Authorization": "Bearer nope"})
    assert "WWW-Authenticate" in bad.headers
    is_error(bad, 401)
    manager = await directory.account("mona", roles=["user-manager"])
    detail = is_error(await client.get(f"{SCIM}/Users", headers=manager.headers), 403)
    assert "users.provision" in detail
    # A token narrowed to reading cannot create, even for an owner.
    reader = await restricted(database, "idp-readonly", ["users.provision", "users.read"])
    assert (await client.get(f"{SCIM}/Users", headers=reader)).status_code == 200
    refused = await client.post(f"{SCIM}/Users", json=scim_user("rita"), headers=reader)
    assert "users.create" in is_error(refused, 403)


# --- create and read -------------------------------------------------------------------------


async def test_create_stores_every_attribute_and_reads_back_what_was_sent(
    client: httpx.AsyncClient, database: Database, owner: Account
) -> None:
    boss = await create(client, owner, scim_user("boss"))
    sent = scim_user(
        "ada.lovelace",
        schemas=[USER, ENTERPRISE],
        externalId="00u1ABC",
        name={"formatted": "Ada King", "givenName": "Ada", "familyName": "Lovelace"},
        displayName="Ada Lovelace",
        nickName="ada",
        title="Analyst",
        userType="Employee",
        locale="en-GB",
        timezone="Europe/London",
        photos=[{"value": "https://img.example/ada.png", "type": "photo"}],
        password="a-Long-unguessable-passphrase-1815",
        **{
            ENTERPRISE: {
                "employeeNumber": "1815",
                "organization": "Analytical Engines",
                "department": "Mathematics",
                "manager": {"value": boss["id"], "$ref": boss["meta"]["location"]},
            }
        },
    )
    response = await client.post(f"{SCIM}/Users", json=sent, headers=owner.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == body["meta"]["location"]
    assert body["meta"]["location"].endswith(f"/scim/v2/Users/{body['id']}")
    assert response.headers["etag"] == body["meta"]["version"]
    for key in ("userName", "externalId", "name", "displayName", "nickName", "title"):
        assert body[key] == sent[key], key
    assert body["emails"] == sent["emails"] and body["photos"] == sent["photos"]
    assert body["active"] is True and "password" not in body
    assert body[ENTERPRISE] == sent[ENTERPRISE]
    (group,) = body["groups"]
    assert group == {
        "value": group["value"],
        "display": "user",
        "$ref": body["meta"]["location"].replace(
            f"/Users/{body['id']}", f"/Groups/{group['value']}"
        ),
    }

    again = await client.get(f"{SCIM}/Users/{body['id']}", headers=owner.headers)
    assert again.json() == body

    # The same user through the native API: pending until the first sign-in, the address
    # vouched for by the identity provider, the console's name the display name.
    user = await native(client, owner, body["id"])
    assert user["status"] == "pending" and user["email_verified"] and user["has_password"]
    assert user["name"] == "Ada Lovelace"
    assert user["directory"]["department"] == "Mathematics"
    assert user["directory"]["manager"] == boss["id"]
    async with database.reader() as session:
        entry = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.target_id == body["id"], AuditEntry.action == "user.created"
                )
            )
        ).one()
    assert entry.actor_name == "olive"
    assert entry.changes["department"] == {"before": None, "after": "Mathematics"}


async def test_a_user_created_with_only_what_is_required_shows_only_that(
    client: httpx.AsyncClient, owner: Account
) -> None:
    body = await create(
        client,
        owner,
        {"schemas": [USER], "userName": "min", "emails": [{"value": "min@corp.example"}]},
    )
    assert set(body) == {"schemas", "id", "meta", "userName", "active", "emails", "groups"}
    assert body["emails"] == [{"value": "min@corp.example"}]
    # The console still has a name to show and sort by: the username.
    assert (await native(client, owner, body["id"]))["name"] == "min"
    # Created inactive: deactivated at once, in the same transaction.
    off = await create(client, owner, scim_user("off", active=False))
    assert off["active"] is False
    assert (await native(client, owner, off["id"]))["status"] == "deactivated"


async def test_bad_input_is_a_scim_error_naming_the_attribute_and_nothing_is_written(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await create(client, owner, scim_user("taken"))
    clash = await client.post(
        f"{SCIM}/Users",
        json=scim_user("TAKEN", emails=[{"value": "other@corp.example"}]),
        headers=owner.headers,
    )
    assert "userName" in is_error(clash, 409, "uniqueness")
    same_address = scim_user("fresh", emails=[{"value": "taken@corp.example"}])
    response = await client.post(f"{SCIM}/Users", json=same_address, headers=owner.headers)
    assert "emails.value" in is_error(response, 409, "uniqueness")

    cases = [
        (scim_user("has space", emails=[{"value": "space@corp.example"}]), "userName"),
        ({"schemas": [USER], "userName": "noaddress"}, "emails"),
        (scim_user("tz", timezone="Mars/Olympus"), "timezone"),
        (scim_user("loc", locale="not a locale"), "locale"),
        (scim_user("weak", password="short"), "password"),
        (scim_user("boss2", **{ENTERPRISE: {"manager": {"value": "nobody"}}}), "manager"),
        ({"schemas": [USER], "userName": 5, "emails": [{"value": "x@corp.example"}]}, "userName"),
    ]
    for body, attribute in cases:
        response = await client.post(f"{SCIM}/Users", json=body, headers=owner.headers)
        assert attribute in is_error(response, 400), (attribute, response.text)
    garbled = await client.post(
        f"{SCIM}/Users",
        content=b"{not json",
        headers={**owner.headers, "content-type": "application/scim+json"},
    )
    is_error(garbled, 400, "invalidSyntax")
    listed = (await client.get(f"{SCIM}/Users", headers=owner.headers)).json()
    assert sorted(r["userName"] for r in listed["Resources"]) == ["olive", "taken"]


# --- filters, sorting, paging, attributes ----------------------------------------------------

PEOPLE = [
    ("ann", "Ann Archer", "Sales", "E1", True),
    ("bob", "Bob Baker", "Sales", "E2", False),
    ("cid", "Cid Carter", "Support", None, True),
    ("dee", "Dee Dorsey", None, "E4", True),
]


@pytest.fixture
async def people(client: httpx.AsyncClient, owner: Account) -> dict[str, Any]:
    made = {}
    for username, display, department, number, active in PEOPLE:
        extension = {k: v for k, v in (("department", department), ("employeeNumber", number)) if v}
        body = scim_user(
            username,
            schemas=[USER, ENTERPRISE],
            displayName=display,
            externalId=f"ext-{username.upper()}",
            active=active,
            emails=[{"value": f"{username}@corp.example", "type": "work"}],
            **({ENTERPRISE: extension} if extension else {}),
        )
        made[username] = await create(client, owner, body)
    return made


async def found(client: httpx.AsyncClient, owner: Account, query: str) -> list[str]:
    response = await client.get(f"{SCIM}/Users", params={"filter": query}, headers=owner.headers)
    assert response.status_code == 200, (query, response.text)
    body = response.json()
    names = sorted(r["userName"] for r in body.get("Resources", []))
    assert body["totalResults"] == len(names)
    return names


async def test_filters_are_answered_by_the_database_with_scim_semantics(
    client: httpx.AsyncClient, owner: Account, people: dict[str, Any]
) -> None:
    cases = {
        'userName eq "ANN"': ["ann"],  # userName compares case-insensitively
        'userName ne "ann"': ["bob", "cid", "dee", "olive"],
        'externalId eq "ext-ANN"': ["ann"],
        'externalId eq "EXT-ANN"': [],  # externalId is case-exact
        'displayName co "ar"': ["ann", "cid"],
        'displayName sw "b"': ["bob"],
        'displayName ew "SEY"': ["dee"],
        "displayName pr": ["ann", "bob", "cid", "dee", "olive"],
        "externalId pr": ["ann", "bob", "cid", "dee"],
        "active eq false": ["bob"],
        "not (active eq true)": ["bob"],
        'emails.value eq "cid@corp.example"': ["cid"],
        'emails eq "CID@CORP.EXAMPLE"': ["cid"],
        'emails[type eq "work" and value ew "example"]': ["ann", "bob", "cid", "dee"],
        'emails[type eq "work"].value sw "d"': ["dee"],
        f'{ENTERPRISE}:department eq "sales"': ["ann", "bob"],
        f'{ENTERPRISE}:department ne "Sales"': ["cid", "dee", "olive"],
        f"not ({ENTERPRISE}:department pr)": ["dee", "olive"],
        f'{ENTERPRISE}:employeeNumber gt "E1" and {ENTERPRISE}:employeeNumber lt "E4"': ["bob"],
        'userName eq "ann" or (userName eq "bob" and active eq false)': ["ann", "bob"],
        'groups.display eq "owner"': ["olive"],
        'meta.created gt "2000-01-01T00:00:00Z" and userName sw "c"': ["cid"],
        "name.givenName pr": [],
    }
    for query, expected in cases.items():
        assert await found(client, owner, query) == expected, query

    for query, scim_type in [
        ("userName eq", "invalidFilter"),
        ('phoneNumbers eq "1"', "invalidFilter"),
        ("active gt true", "invalidFilter"),
        ('meta.created gt "yesterday"', "invalidValue"),
    ]:
        response = await client.get(
            f"{SCIM}/Users", params={"filter": query}, headers=owner.headers
        )
        is_error(response, 400, scim_type)


async def test_sorting_paging_and_attribute_selection(
    client: httpx.AsyncClient, owner: Account, people: dict[str, Any]
) -> None:
    response = await client.get(
        f"{SCIM}/Users",
        params={"sortBy": "displayName", "sortOrder": "descending", "startIndex": 2, "count": 2},
        headers=owner.headers,
    )
    body = response.json()
    assert body["totalResults"] == 5 and body["startIndex"] == 2 and body["itemsPerPage"] == 2
    # Olive Owner, Dee, Cid, Bob, Ann: from the second, two.
    assert [r["userName"] for r in body["Resources"]] == ["dee", "cid"]
    empty = await client.get(f"{SCIM}/Users", params={"count": 0}, headers=owner.headers)
    assert empty.json()["totalResults"] == 5 and "Resources" not in empty.json()

    slim = await client.get(
        f"{SCIM}/Users",
        params={"filter": 'userName eq "ann"', "attributes": "userName,emails.value"},
        headers=owner.headers,
    )
    [only] = slim.json()["Resources"]
    assert set(only) == {"schemas", "id", "userName", "emails"}
    assert only["emails"] == [{"value": "ann@corp.example"}]
    without = await client.get(
        f"{SCIM}/Users/{people['ann']['id']}",
        params={"excludedAttributes": "emails,groups"},
        headers=owner.headers,
    )
    assert "emails" not in without.json() and without.json()["userName"] == "ann"

    searched = await client.post(
        f"{SCIM}/Users/.search",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'displayName sw "c"',
            "attributes": ["userName"],
        },
        headers=owner.headers,
    )
    assert [r["userName"] for r in searched.json()["Resources"]] == ["cid"]
    bad_sort = await client.get(f"{SCIM}/Users", params={"sortBy": "nope"}, headers=owner.headers)
    assert "sortBy" in is_error(bad_sort, 400)


# --- patch, replace, delete ------------------------------------------------------------------


async def test_patch_as_entra_and_okta_send_it(
    client: httpx.AsyncClient, owner: Account, people: dict[str, Any]
) -> None:
    ann, cid = people["ann"], people["cid"]
    # Entra ID: capitalised operations, booleans as strings, the manager as a bare id.
    response = await patch(
        client,
        owner,
        ann["id"],
        {"op": "Replace", "path": "displayName", "value": "Ann Archer-Smith"},
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": cid["id"]},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "ann@new.example"},
        {"op": "Replace", "path": "active", "value": "False"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["displayName"] == "Ann Archer-Smith" and body["active"] is False
    assert body[ENTERPRISE]["manager"]["value"] == cid["id"]
    assert body["emails"][0]["value"] == "ann@new.example"
    user = await native(client, owner, ann["id"])
    assert user["status"] == "deactivated" and user["name"] == "Ann Archer-Smith"
    assert user["email"] == "ann@new.example" and user["email_verified"]

    # Okta: a path-less replace of active; and path-less dotted and URN-prefixed keys.
    response = await patch(client, owner, ann["id"], {"op": "replace", "value": {"active": True}})
    assert response.json()["active"] is True
    assert (await native(client, owner, ann["id"]))["status"] == "pending"
    response = await patch(
        client,
        owner,
        ann["id"],
        {
            "op": "replace",
            "value": {"name.givenName": "Annie", f"{ENTERPRISE}:department": "Marketing"},
        },
    )
    assert response.json()["name"] == {"givenName": "Annie"}
    assert response.json()[ENTERPRISE]["department"] == "Marketing"

    # Removal: the attribute is gone, and the display name falls back only for the console.
    response = await patch(client, owner, ann["id"], {"op": "remove", "path": "displayName"})
    assert "displayName" not in response.json()
    assert (await native(client, owner, ann["id"]))["name"] == "Annie"
    response = await patch(client, owner, ann["id"], {"op": "remove", "path": ENTERPRISE})
    assert ENTERPRISE not in response.json()

    # A bad operation changes nothing.
    before = (await client.get(f"{SCIM}/Users/{ann['id']}", headers=owner.headers)).json()
    for operation, scim_type in [
        ({"op": "replace", "path": "userName", "value": "has space"}, "invalidValue"),
        ({"op": "explode", "path": "title", "value": "x"}, None),
        ({"op": "replace", "path": "emails[", "value": "x"}, None),
    ]:
        response = await patch(
            client,
            owner,
            ann["id"],
            {"op": "replace", "path": "title", "value": "Changed"},
            operation,
        )
        is_error(response, 400, scim_type)
    after = (await client.get(f"{SCIM}/Users/{ann['id']}", headers=owner.headers)).json()
    assert after == before


async def test_put_replaces_and_etags_guard_every_write(
    client: httpx.AsyncClient, owner: Account, people: dict[str, Any]
) -> None:
    bob = people["bob"]
    replaced = await client.put(
        f"{SCIM}/Users/{bob['id']}",
        json=scim_user("robert", title="Baker"),
        headers={**owner.headers, "If-Match": bob["meta"]["version"]},
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    # What the replacement does not carry is gone: display name, externalId, department.
    assert body["userName"] == "robert" and body["title"] == "Baker"
    assert "displayName" not in body and "externalId" not in body and ENTERPRISE not in body
    assert body["active"] is True and body["meta"]["version"] != bob["meta"]["version"]
    assert (await native(client, owner, bob["id"]))["status"] == "pending"

    stale = await client.put(
        f"{SCIM}/Users/{bob['id']}",
        json=scim_user("bobby"),
        headers={**owner.headers, "If-Match": bob["meta"]["version"]},
    )
    is_error(stale, 412)
    stale_patch = await client.patch(
        f"{SCIM}/Users/{bob['id']}",
        json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "x"}]},
        headers={**owner.headers, "If-Match": bob["meta"]["version"]},
    )
    is_error(stale_patch, 412)
    stale_delete = await client.delete(
        f"{SCIM}/Users/{bob['id']}", headers={**owner.headers, "If-Match": 'W/"0"'}
    )
    is_error(stale_delete, 412)
    current = (await client.get(f"{SCIM}/Users/{bob['id']}", headers=owner.headers)).json()
    assert current["userName"] == "robert" and current["title"] == "Baker"
    unchanged = await client.get(
        f"{SCIM}/Users/{bob['id']}",
        headers={**owner.headers, "If-None-Match": current["meta"]["version"]},
    )
    assert unchanged.status_code == 304
    # A write that changes nothing leaves the version alone.
    same = await patch(
        client, owner, bob["id"], {"op": "replace", "path": "title", "value": "Baker"}
    )
    assert same.json()["meta"]["version"] == current["meta"]["version"]


async def test_delete_and_the_console_rules_hold_over_scim(
    client: httpx.AsyncClient, owner: Account, people: dict[str, Any]
) -> None:
    cid = people["cid"]
    deleted = await client.delete(f"{SCIM}/Users/{cid['id']}", headers=owner.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    is_error(await client.get(f"{SCIM}/Users/{cid['id']}", headers=owner.headers), 404)
    is_error(await client.delete(f"{SCIM}/Users/{cid['id']}", headers=owner.headers), 404)

    # The last active owner cannot be deactivated or deleted, whoever asks.
    detail = is_error(
        await patch(client, owner, owner.id, {"op": "replace", "path": "active", "value": False}),
        409,
    )
    assert "owner" in detail
    assert (await native(client, owner, owner.id))["status"] != "deactivated"

    # The seat limit holds: with every seat taken, a new active user is refused.
    used = (await client.get("/api/v1/seats", headers=owner.headers)).json()["used"]
    limited = await client.patch(
        "/api/v1/settings", json={"seat_limit": used}, headers=owner.headers
    )
    assert limited.status_code == 200, limited.text
    full = await client.post(f"{SCIM}/Users", json=scim_user("extra"), headers=owner.headers)
    assert "seat" in is_error(full, 409).lower()


async def test_filters_on_case_exact_and_non_ascii_values_and_the_manager_agree_on_both_databases(
    client: httpx.AsyncClient, owner: Account, people: dict[str, Any]
) -> None:
    ann, cid = people["ann"], people["cid"]
    await patch(client, owner, ann["id"], {"op": "add", "path": "nickName", "value": "Émile"})
    await patch(
        client,
        owner,
        ann["id"],
        {"op": "add", "path": f"{ENTERPRISE}:manager", "value": {"value": cid["id"]}},
    )
    cases = {
        'nickName eq "Émile"': ["ann"],  # the stored case always matches, accents included
        'nickName co "mil"': ["ann"],
        'externalId sw "ext-A"': ["ann"],
        'externalId sw "EXT"': [],  # case-exact, on SQLite as on PostgreSQL
        'externalId co "t-B"': ["bob"],
        'externalId ew "ID"': ["cid"],
        'externalId ew "id"': [],
        f'{ENTERPRISE}:manager.value eq "{cid["id"]}"': ["ann"],
        f'{ENTERPRISE}:manager eq "{cid["id"]}"': ["ann"],
        f'{ENTERPRISE}:manager.value ne "{cid["id"]}"': ["bob", "cid", "dee", "olive"],
        f"{ENTERPRISE}:manager pr": ["ann"],
        'groups.value eq "99999999999999999999"': [],
    }
    for query, expected in cases.items():
        assert await found(client, owner, query) == expected, query
    by_creation = await client.get(
        f"{SCIM}/Users",
        params={"sortBy": "meta.created", "sortOrder": "descending", "count": 2},
        headers=owner.headers,
    )
    assert by_creation.status_code == 200, by_creation.text
    assert [r["userName"] for r in by_creation.json()["Resources"]] == ["dee", "cid"]
    by_change = await client.get(
        f"{SCIM}/Users", params={"sortBy": "meta.lastModified"}, headers=owner.headers
    )
    assert by_change.status_code == 200, by_change.text


async def test_crafted_requests_get_scim_errors_not_crashes(
    client: httpx.AsyncClient, owner: Account, people: dict[str, Any]
) -> None:
    ann = people["ann"]
    odd = await client.patch(
        f"{SCIM}/Users/{ann['id']}",
        json={"schemas": [PATCH], "Operations": 5},
        headers=owner.headers,
    )
    is_error(odd, 400)
    for query, scim_type in [
        ('meta.created gt "0001-01-01T00:00:00+05:00"', "invalidValue"),
        ('meta.created lt "9999-12-31T23:59:59-05:00"', "invalidValue"),
        (" or ".join(f'userName eq "u{n}"' for n in range(201)), "invalidFilter"),
    ]:
        response = await client.get(
            f"{SCIM}/Users", params={"filter": query}, headers=owner.headers
        )
        is_error(response, 400, scim_type)
    many = await client.post(
        f"{SCIM}/Users/.search",
        json={"filter": " or ".join(f'userName eq "u{n}"' for n in range(200))},
        headers=owner.headers,
    )
    assert many.status_code == 200 and many.json()["totalResults"] == 0


async def test_provisioning_needs_reading_too(
    client: httpx.AsyncClient, database: Database, owner: Account
) -> None:
    blind = await restricted(database, "blind", ["users.provision", "users.create"])
    refused = await client.post(f"{SCIM}/Users", json=scim_user("ghost"), headers=blind)
    assert "users.read" in is_error(refused, 403)
    assert (await found(client, owner, 'userName eq "ghost"')) == []


async def test_entra_changes_an_address_that_has_no_type(
    client: httpx.AsyncClient, owner: Account
) -> None:
    made = await create(
        client,
        owner,
        {"schemas": [USER], "userName": "untyped", "emails": [{"value": "u@corp.example"}]},
    )
    response = await patch(
        client,
        owner,
        made["id"],
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "u2@corp.example"},
    )
    assert response.status_code == 200, response.text
    assert (await native(client, owner, made["id"]))["email"] == "u2@corp.example"


async def test_names_nobody_gave_follow_the_names_they_come_from(
    client: httpx.AsyncClient, owner: Account
) -> None:
    made = await create(
        client,
        owner,
        scim_user("nameless", name={"givenName": "Nora", "familyName": "Lamb"}),
    )
    assert "displayName" not in made
    assert (await native(client, owner, made["id"]))["name"] == "Nora Lamb"
    # Changed in the console, the given name renames a user nobody named.
    changed = await client.patch(
        f"/api/v1/users/{made['id']}", json={"given_name": "Norah"}, headers=owner.headers
    )
    assert changed.json()["name"] == "Norah Lamb"
    # Named by hand, the name stays put, and SCIM shows it as the displayName.
    named = await client.patch(
        f"/api/v1/users/{made['id']}", json={"name": "N. Lamb"}, headers=owner.headers
    )
    assert named.json()["directory"]["name_derived"] is False
    await client.patch(
        f"/api/v1/users/{made['id']}", json={"given_name": "Nell"}, headers=owner.headers
    )
    read = (await client.get(f"{SCIM}/Users/{made['id']}", headers=owner.headers)).json()
    assert read["displayName"] == "N. Lamb" and read["name"]["givenName"] == "Nell"


async def test_the_etag_moves_with_real_changes_only(
    client: httpx.AsyncClient, owner: Account, people: dict[str, Any]
) -> None:
    dee = people["dee"]
    first = (await client.get(f"{SCIM}/Users/{dee['id']}", headers=owner.headers)).json()
    same = await client.patch(
        f"/api/v1/users/{dee['id']}", json={"name": "Dee Dorsey"}, headers=owner.headers
    )
    assert same.status_code == 200
    again = (await client.get(f"{SCIM}/Users/{dee['id']}", headers=owner.headers)).json()
    assert again["meta"]["version"] == first["meta"]["version"]
    # A role renamed changes how the user reads: their ETag changes.
    made = await client.post(
        "/api/v1/roles", json={"name": "helpers", "permissions": []}, headers=owner.headers
    )
    assert made.status_code == 201, made.text
    await client.put(
        f"/api/v1/users/{dee['id']}/roles",
        json={"roles": ["user", "helpers"]},
        headers=owner.headers,
    )
    before = (await client.get(f"{SCIM}/Users/{dee['id']}", headers=owner.headers)).json()
    renamed = await client.patch(
        "/api/v1/roles/helpers", json={"name": "assistants"}, headers=owner.headers
    )
    assert renamed.status_code == 200, renamed.text
    cached = await client.get(
        f"{SCIM}/Users/{dee['id']}",
        headers={**owner.headers, "If-None-Match": before["meta"]["version"]},
    )
    assert cached.status_code == 200
    assert any(g["display"] == "assistants" for g in cached.json()["groups"])


async def test_an_inactive_user_is_created_deactivated_without_a_seat(
    client: httpx.AsyncClient, owner: Account
) -> None:
    used = (await client.get("/api/v1/seats", headers=owner.headers)).json()["used"]
    limited = await client.patch(
        "/api/v1/settings", json={"seat_limit": used}, headers=owner.headers
    )
    assert limited.status_code == 200, limited.text
    gone = await create(client, owner, scim_user("leaver", active=False))
    assert gone["active"] is False
    assert (await native(client, owner, gone["id"]))["status"] == "deactivated"
    assert (await client.get("/api/v1/seats", headers=owner.headers)).json()["used"] == used


async def test_a_password_pushed_again_does_not_end_sessions(
    client: httpx.AsyncClient, database: Database, owner: Account
) -> None:
    password = "a-Long-unguessable-passphrase-1815"
    made = await create(client, owner, scim_user("pushed", password=password))
    token = await mint_token(database, "pushed")
    mine = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/me", headers=mine)).status_code == 200
    body = scim_user("pushed", password=password)
    assert (
        await client.put(f"{SCIM}/Users/{made['id']}", json=body, headers=owner.headers)
    ).status_code == 200
    assert (await client.get("/api/v1/me", headers=mine)).status_code == 200
    body["password"] = "another-Long-passphrase-2026"
    assert (
        await client.put(f"{SCIM}/Users/{made['id']}", json=body, headers=owner.headers)
    ).status_code == 200
    assert (await client.get("/api/v1/me", headers=mine)).status_code == 401


async def test_the_token_the_readme_shows_can_provision(
    client: httpx.AsyncClient, database: Database, owner: Account
) -> None:
    """README.md's restricted token for an identity provider does the whole job."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    command = readme[readme.index("tokens create --user admin --name entra-id") :]
    command = command[: command.index("```")]
    permissions = re.findall(r"--permission (\S+)", command)
    assert "users.provision" in permissions
    idp = await restricted(database, "entra-id", permissions)
    made = await client.post(f"{SCIM}/Users", json=scim_user("jdoe"), headers=idp)
    assert made.status_code == 201, made.text
    user_id = made.json()["id"]
    for operation in (
        {"op": "replace", "path": "title", "value": "Clerk"},
        {"op": "replace", "path": "active", "value": False},
    ):
        response = await client.patch(
            f"{SCIM}/Users/{user_id}",
            json={"schemas": [PATCH], "Operations": [operation]},
            headers=idp,
        )
        assert response.status_code == 200, response.text
    assert (await client.delete(f"{SCIM}/Users/{user_id}", headers=idp)).status_code == 204
