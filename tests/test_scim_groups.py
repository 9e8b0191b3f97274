"""SCIM Groups at /scim/v2/Groups, driven over HTTP as identity providers drive them, on
SQLite and PostgreSQL: roles as groups, members granted and taken through the role
actions (so the last owner, "nobody grants more than they hold" and the audit log hold),
what Entra ID and Okta really send, ETags, errors in the SCIM error schema, and migration
0010 down and up again."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import inspect, select, text

from tests.conftest import Account, Directory, postgres_only, statements
from tests.test_scim_users import PATCH, SCIM, create, is_error, restricted, scim_user
from userdesk.actions import roles as role_actions
from userdesk.actions import users as user_actions
from userdesk.actions.context import Actor
from userdesk.db import MIGRATIONS_DIR, Database
from userdesk.models import AuditEntry, Role, User

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def scim_group(display_name: str, *member_ids: str, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": [GROUP],
        "displayName": display_name,
        "members": [{"value": member_id} for member_id in member_ids],
        **extra,
    }


async def make_group(client: httpx.AsyncClient, owner: Account, body: dict[str, Any]) -> Any:
    response = await client.post(f"{SCIM}/Groups", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def read(client: httpx.AsyncClient, owner: Account, group_id: str) -> Any:
    response = await client.get(f"{SCIM}/Groups/{group_id}", headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()


def member_ids(group: dict[str, Any]) -> set[str]:
    return {member["value"] for member in group.get("members", [])}


async def patch(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    group_id: str,
    *operations: dict[str, Any],
    **params: str,
) -> httpx.Response:
    return await client.patch(
        f"{SCIM}/Groups/{group_id}",
        json={"schemas": [PATCH], "Operations": list(operations)},
        headers=headers,
        params=params,
    )


async def roles_of(client: httpx.AsyncClient, owner: Account, user_id: str) -> list[str]:
    response = await client.get(f"/api/v1/users/{user_id}", headers=owner.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["roles"])


async def group_named(client: httpx.AsyncClient, owner: Account, display_name: str) -> Any:
    found = await client.get(
        f"{SCIM}/Groups",
        params={"filter": f'displayName eq "{display_name}"'},
        headers=owner.headers,
    )
    assert found.status_code == 200, found.text
    (group,) = found.json()["Resources"]
    return group


async def people(client: httpx.AsyncClient, owner: Account, *names: str) -> list[str]:
    return [(await create(client, owner, scim_user(name)))["id"] for name in names]


# --- discovery ---------------------------------------------------------------------------------


async def test_discovery_lists_groups_with_their_schema(
    client: httpx.AsyncClient, owner: Account
) -> None:
    types = (await client.get(f"{SCIM}/ResourceTypes", headers=owner.headers)).json()
    assert [t["id"] for t in types["Resources"]] == ["User", "Group"]
    group_type = (await client.get(f"{SCIM}/ResourceTypes/Group", headers=owner.headers)).json()
    assert group_type["endpoint"] == "/Groups" and group_type["schema"] == GROUP
    schema = (await client.get(f"{SCIM}/Schemas/{GROUP}", headers=owner.headers)).json()
    attributes = {a["name"]: a for a in schema["attributes"]}
    assert set(attributes) == {"displayName", "members"}
    assert attributes["displayName"]["required"]
    assert attributes["displayName"]["uniqueness"] == "server"
    members = {s["name"]: s for s in attributes["members"]["subAttributes"]}
    assert set(members) == {"value", "$ref", "type"}
    assert members["$ref"]["referenceTypes"] == ["User"]
    assert members["type"]["canonicalValues"] == ["User"]


# --- create and read -------------------------------------------------------------------------


async def test_create_a_group_with_members_grants_them_the_role(
    client: httpx.AsyncClient, database: Database, owner: Account
) -> None:
    ann, bob = await people(client, owner, "ann", "bob")
    response = await client.post(
        f"{SCIM}/Groups",
        json=scim_group("Sales Team", ann, bob, externalId="entra-42"),
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    group = response.json()
    assert response.headers["location"] == group["meta"]["location"]
    assert group["meta"]["location"].endswith(f"/scim/v2/Groups/{group['id']}")
    assert response.headers["etag"] == group["meta"]["version"]
    assert group["displayName"] == "Sales Team" and group["externalId"] == "entra-42"
    assert group["meta"]["resourceType"] == "Group"
    base = group["meta"]["location"].rsplit("/Groups/", 1)[0]
    assert sorted(group["members"], key=lambda m: m["value"]) == sorted(
        ({"value": u, "$ref": f"{base}/Users/{u}", "type": "User"} for u in (ann, bob)),
        key=lambda m: m["value"],
    )
    assert await read(client, owner, group["id"]) == group

    # The role, as the console and the native API see it: a slug named after the group,
    # no permissions, not built in.
    role = (await client.get("/api/v1/roles/sales-team", headers=owner.headers)).json()
    assert role["id"] == group["id"] and role["display_name"] == "Sales Team"
    assert role["permissions"] == [] and not role["built_in"] and role["users"] == 2
    assert role["external_id"] == "entra-42"
    assert await roles_of(client, owner, ann) == ["sales-team", "user"]

    # The user's read-only groups name the group by its id, displayName and $ref.
    user = (await client.get(f"{SCIM}/Users/{ann}", headers=owner.headers)).json()
    assert {
        "value": group["id"],
        "display": "Sales Team",
        "$ref": f"{base}/Groups/{group['id']}",
    } in user["groups"]

    # Audited through the actions: the role's creation and each member's new roles.
    async with database.reader() as session:
        actions = [
            (entry.action, entry.target_name)
            for entry in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert ("role.created", "sales-team") in actions
    assert ("user.roles_changed", "ann") in actions and ("user.roles_changed", "bob") in actions

    # The same display name again, in another case: a slug would be free, the name is not.
    duplicate = await client.post(
        f"{SCIM}/Groups", json=scim_group("sales TEAM"), headers=owner.headers
    )
    assert "displayName" in is_error(duplicate, 409, "uniqueness")
    # Another name making the same slug gets a numbered one.
    other = await make_group(client, owner, scim_group("Sales-Team!"))
    renamed = (await client.get("/api/v1/roles", headers=owner.headers)).json()["items"]
    assert {r["name"] for r in renamed if r["id"] == other["id"]} == {"sales-team-2"}


async def test_any_unicode_display_name_is_kept(client: httpx.AsyncClient, owner: Account) -> None:
    group = await make_group(client, owner, scim_group("Équipe 東京 ✓"))
    assert group["displayName"] == "Équipe 東京 ✓"
    # A name with no ASCII letter still gets a slug.
    assert (await group_named(client, owner, "équipe 東京 ✓"))["id"] == group["id"]
    too_long = await client.post(
        f"{SCIM}/Groups", json=scim_group("x" * 257), headers=owner.headers
    )
    assert "displayName" in is_error(too_long, 400)
    nameless = await client.post(
        f"{SCIM}/Groups", json={"schemas": [GROUP], "members": []}, headers=owner.headers
    )
    assert "displayName" in is_error(nameless, 400)


async def test_creating_a_group_needs_roles_manage(
    client: httpx.AsyncClient, database: Database, owner: Account
) -> None:
    reader = await restricted(database, "idp", ["users.provision", "users.read", "roles.assign"])
    assert (await client.get(f"{SCIM}/Groups", headers=reader)).status_code == 200
    refused = await client.post(f"{SCIM}/Groups", json=scim_group("Ops"), headers=reader)
    assert "roles.manage" in is_error(refused, 403)


# --- list, filter, sort, page ---------------------------------------------------------------


async def test_filters_sorting_paging_and_attributes(
    client: httpx.AsyncClient, owner: Account
) -> None:
    (ann,) = await people(client, owner, "ann")
    sales = await make_group(client, owner, scim_group("Sales", ann, externalId="ext-sales"))
    await make_group(client, owner, scim_group("Support"))

    async def names(filter_: str, **params: str) -> list[str]:
        response = await client.get(
            f"{SCIM}/Groups", params={"filter": filter_, **params}, headers=owner.headers
        )
        assert response.status_code == 200, response.text
        return [g["displayName"] for g in response.json().get("Resources", [])]

    assert await names('displayName eq "SALES"') == ["Sales"]
    assert await names('displayName sw "su"') == ["Support"]
    assert await names('externalId eq "ext-sales"') == ["Sales"]
    assert await names('externalId eq "EXT-SALES"') == []  # case-exact
    assert await names(f'id eq "{sales["id"]}"') == ["Sales"]
    # Users are found by their groups' ids and display names.
    for users_filter in (f'groups.value eq "{sales["id"]}"', 'groups[display eq "SALES"]'):
        users = await client.get(
            f"{SCIM}/Users", params={"filter": users_filter}, headers=owner.headers
        )
        assert [u["id"] for u in users.json()["Resources"]] == [ann], users_filter
    assert await names(f'members.value eq "{ann}"', sortBy="displayName") == ["Sales", "user"]
    assert await names(f'members[value eq "{ann}"] and displayName eq "sales"') == ["Sales"]
    assert await names(f'not (members eq "{ann}") and displayName sw "s"') == ["Support"]
    assert await names('meta.created gt "2000-01-01T00:00:00Z" and displayName eq "owner"') == [
        "owner"
    ]
    assert await names("members pr", sortBy="displayName") == ["owner", "Sales", "user"]
    is_error(
        await client.get(
            f"{SCIM}/Groups", params={"filter": 'color eq "red"'}, headers=owner.headers
        ),
        400,
        "invalidFilter",
    )

    every = await client.get(
        f"{SCIM}/Groups",
        params={
            "sortBy": "displayName",
            "sortOrder": "descending",
            "startIndex": "2",
            "count": "2",
        },
        headers=owner.headers,
    )
    body = every.json()
    # Six built-in roles and the two groups.
    assert body["totalResults"] == 8 and body["startIndex"] == 2 and body["itemsPerPage"] == 2
    assert [g["displayName"] for g in body["Resources"]] == ["user", "Support"]

    trimmed = await client.get(
        f"{SCIM}/Groups",
        params={"filter": 'displayName eq "Sales"', "excludedAttributes": "members"},
        headers=owner.headers,
    )
    (only,) = trimmed.json()["Resources"]
    assert "members" not in only and only["displayName"] == "Sales"
    picked = await client.get(
        f"{SCIM}/Groups/{sales['id']}", params={"attributes": "displayName"}, headers=owner.headers
    )
    assert picked.json()["displayName"] == "Sales"
    assert "members" not in picked.json() and "externalId" not in picked.json()
    searched = await client.post(
        f"{SCIM}/Groups/.search",
        json={"filter": 'displayName eq "sales"', "attributes": ["members"]},
        headers=owner.headers,
    )
    assert [member_ids(g) for g in searched.json()["Resources"]] == [{ann}]


async def test_excluding_members_reads_no_member(
    client: httpx.AsyncClient, database: Database, owner: Account
) -> None:
    ids = await people(client, owner, "ann", "bob", "cy")
    group = await make_group(client, owner, scim_group("Crowd", *ids))

    async def member_reads(**params: str) -> list[str]:
        with statements(database) as seen:
            response = await client.get(
                f"{SCIM}/Groups/{group['id']}", params=params, headers=owner.headers
            )
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == group["meta"]["version"]
        # The ETag's digest reads user_roles' index alone; members are read by one
        # statement joining the role's holders to their ids.
        return [s for s, _ in seen if "users.public_id" in s and "ORDER BY user_roles" in s]

    assert len(await member_reads()) == 1
    assert await member_reads(excludedAttributes="members") == []
    assert await member_reads(attributes="displayName") == []

    # A PATCH naming members reads those users only, never the group's member list; a
    # replacement of them all has to.
    (dee,) = await people(client, owner, "dee")
    for operation, reads in (
        ({"op": "add", "path": "members", "value": [{"value": dee}]}, 0),
        ({"op": "remove", "path": f'members[value eq "{ids[0]}"]'}, 0),
        ({"op": "remove", "path": "members", "value": [{"value": ids[1]}]}, 0),
        ({"op": "replace", "path": "members", "value": [{"value": ids[2]}]}, 1),
    ):
        with statements(database) as seen:
            response = await patch(client, owner.headers, group["id"], operation)
        assert response.status_code == 204, response.text
        listed = [s for s, _ in seen if "users.public_id" in s and "ORDER BY user_roles" in s]
        assert len(listed) == reads, (operation, listed)
    assert member_ids(await read(client, owner, group["id"])) == {ids[2]}


# --- PATCH as providers send it ---------------------------------------------------------------


async def test_okta_renames_and_changes_members(client: httpx.AsyncClient, owner: Account) -> None:
    ann, bob, cy = await people(client, owner, "ann", "bob", "cy")
    group = await make_group(client, owner, scim_group("Okta Group", ann))
    gid = group["id"]
    renamed = await patch(
        client,
        owner.headers,
        gid,
        {"op": "replace", "value": {"id": gid, "displayName": "Okta Renamed"}},
    )
    assert renamed.status_code == 204, renamed.text
    assert renamed.headers["etag"] != group["meta"]["version"]
    added = await patch(
        client,
        owner.headers,
        gid,
        {
            "op": "add",
            "path": "members",
            "value": [{"value": bob, "display": "bob"}, {"value": cy}],
        },
    )
    assert added.status_code == 204, added.text
    removed = await patch(
        client,
        owner.headers,
        gid,
        {"op": "remove", "path": "members", "value": [{"value": ann, "display": "ann"}]},
    )
    assert removed.status_code == 204, removed.text
    now = await read(client, owner, gid)
    assert now["displayName"] == "Okta Renamed" and member_ids(now) == {bob, cy}
    assert now["meta"]["version"] == removed.headers["etag"]
    assert await roles_of(client, owner, ann) == ["user"]
    # The slug stays: only the display name follows the provider.
    assert "okta-group" in await roles_of(client, owner, bob)


async def test_entra_adds_and_removes_members_and_replaces_attributes(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ann, bob, cy = await people(client, owner, "ann", "bob", "cy")
    group = await make_group(client, owner, scim_group("Entra Group"))
    gid = group["id"]
    added = await patch(
        client,
        owner.headers,
        gid,
        {"op": "Add", "path": "members", "value": [{"value": ann}, {"value": bob}, {"value": cy}]},
    )
    assert added.status_code == 204, added.text
    removed = await patch(
        client,
        owner.headers,
        gid,
        {"op": "Remove", "path": f'{GROUP}:members[Value EQ "{ann}"]'},
        {"op": "Remove", "path": f'members[value eq "{bob}" or value eq "not-a-member"]'},
        # Ids are case-exact: this one names nobody.
        {"op": "Remove", "path": f'members[value eq "{cy.upper()}"]'},
    )
    assert removed.status_code == 204, removed.text
    replaced = await patch(
        client,
        owner.headers,
        gid,
        {"op": "Replace", "path": "displayName", "value": "Entra Renamed"},
        {"op": "Replace", "value": {f"{GROUP}:externalId": "ext-1"}},
        attributes="displayName,externalId,members",
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["displayName"] == "Entra Renamed" and body["externalId"] == "ext-1"
    assert member_ids(body) == {cy}
    assert replaced.headers["etag"] == (await read(client, owner, gid))["meta"]["version"]
    # Removing the external id, then every member (remove with no value).
    cleared = await patch(
        client,
        owner.headers,
        gid,
        {"op": "remove", "path": "externalId"},
        {"op": "remove", "path": "members"},
    )
    assert cleared.status_code == 204, cleared.text
    now = await read(client, owner, gid)
    assert "externalId" not in now and "members" not in now
    # Adding one already there, and removing one absent, change nothing.
    again = await patch(
        client, owner.headers, gid, {"op": "add", "path": "members", "value": [{"value": cy}]}
    )
    same = await patch(
        client, owner.headers, gid, {"op": "add", "path": "members", "value": [{"value": cy}]}
    )
    assert again.headers["etag"] == same.headers["etag"]


async def test_patch_errors_name_the_attribute(client: httpx.AsyncClient, owner: Account) -> None:
    (ann,) = await people(client, owner, "ann")
    gid = (await make_group(client, owner, scim_group("Errors", ann)))["id"]
    unknown = await patch(
        client, owner.headers, gid, {"op": "add", "path": "members", "value": [{"value": "nope"}]}
    )
    assert "members.value" in is_error(unknown, 400, "invalidValue")
    nested = await patch(
        client,
        owner.headers,
        gid,
        {"op": "add", "path": "members", "value": [{"value": gid, "type": "Group"}]},
    )
    assert "members.type" in is_error(nested, 400, "invalidValue")
    is_error(await patch(client, owner.headers, gid, {"op": "remove"}), 400, "noTarget")
    is_error(await patch(client, owner.headers, gid, {"op": "move", "path": "x"}), 400)
    assert "displayName" in is_error(
        await patch(client, owner.headers, gid, {"op": "remove", "path": "displayName"}), 400
    )
    is_error(
        await patch(client, owner.headers, gid, {"op": "replace", "path": "color", "value": 1}),
        400,
        "invalidPath",
    )
    is_error(
        await patch(
            client, owner.headers, gid, {"op": "remove", "path": 'members[display eq "ann"]'}
        ),
        400,
        "invalidFilter",
    )
    # Nothing was half-written: an unknown member beside a known one adds neither.
    (bob,) = await people(client, owner, "bob")
    mixed = await patch(
        client,
        owner.headers,
        gid,
        {"op": "add", "path": "members", "value": [{"value": bob}, {"value": "nope"}]},
    )
    is_error(mixed, 400)
    assert member_ids(await read(client, owner, gid)) == {ann}
    missing = await patch(
        client, owner.headers, "no-such-group", {"op": "remove", "path": "members"}
    )
    is_error(missing, 404)


# --- PUT ---------------------------------------------------------------------------------------


async def test_put_replaces_name_and_members(client: httpx.AsyncClient, owner: Account) -> None:
    ann, bob, cat = await people(client, owner, "ann", "bob", "cat")
    group = await make_group(client, owner, scim_group("Put Group", ann, externalId="e1"))
    response = await client.put(
        f"{SCIM}/Groups/{group['id']}",
        json=scim_group("Put Renamed", bob),
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["displayName"] == "Put Renamed" and member_ids(body) == {bob}
    assert "externalId" not in body  # PUT replaces: what is not sent is gone
    assert await roles_of(client, owner, ann) == ["user"]
    taken = await make_group(client, owner, scim_group("Taken"))
    # Refused for its name after its members were changed (members go first): the
    # member changes are rolled back with it.
    clash = await client.put(
        f"{SCIM}/Groups/{group['id']}", json=scim_group("TAKEN", ann, cat), headers=owner.headers
    )
    assert "displayName" in is_error(clash, 409, "uniqueness")
    assert taken["displayName"] == "Taken"
    after = await read(client, owner, group["id"])
    assert after["displayName"] == "Put Renamed" and member_ids(after) == {bob}
    assert await roles_of(client, owner, ann) == ["user"]
    assert await roles_of(client, owner, cat) == ["user"]


# --- built-in roles and the rules ------------------------------------------------------------


async def test_built_in_groups_keep_their_name_and_the_last_owner(
    client: httpx.AsyncClient, owner: Account
) -> None:
    owners = await group_named(client, owner, "owner")
    assert member_ids(owners) == {owner.id}
    renamed = await patch(
        client,
        owner.headers,
        owners["id"],
        {"op": "replace", "path": "displayName", "value": "Bosses"},
    )
    assert "displayName" in is_error(renamed, 400, "mutability")
    # An external id, which providers set to match a group, may be set on a built-in one.
    matched = await patch(
        client, owner.headers, owners["id"], {"op": "add", "path": "externalId", "value": "x"}
    )
    assert matched.status_code == 204, matched.text

    (ann,) = await people(client, owner, "ann")
    # Olive is the only active owner (ann, added in the same request, is still pending):
    # taking the role from her is refused, and nothing of the request is kept.
    last = await patch(
        client,
        owner.headers,
        owners["id"],
        {"op": "add", "path": "members", "value": [{"value": ann}]},
        {"op": "remove", "path": f'members[value eq "{owner.id}"]'},
    )
    assert "active owner" in is_error(last, 409)
    assert await roles_of(client, owner, ann) == ["user"]
    lone = await patch(client, owner.headers, owners["id"], {"op": "remove", "path": "members"})
    assert "active owner" in is_error(lone, 409)
    assert member_ids(await read(client, owner, owners["id"])) == {owner.id}
    # Other members of a built-in group come and go.
    admins = await group_named(client, owner, "admin")
    joined = await patch(
        client, owner.headers, admins["id"], {"op": "add", "path": "members", "value": [ann]}
    )
    assert joined.status_code == 204, joined.text
    assert await roles_of(client, owner, ann) == ["admin", "user"]
    refused = await client.delete(f"{SCIM}/Groups/{owners['id']}", headers=owner.headers)
    assert "built-in" in is_error(refused, 400, "mutability")


async def test_a_built_in_group_takes_its_display_name_in_another_case(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """Okta and Entra link a group by `displayName eq "Admin"` and send "Admin" back: the
    same name in another case is no change (it was 400 mutability); another name still is."""
    admins = await group_named(client, owner, "Admin")
    for body in (
        {"op": "replace", "path": "displayName", "value": "Admin"},
        {"op": "replace", "value": {"id": admins["id"], "displayName": "ＡＤＭＩＮ"}},
    ):
        same = await patch(client, owner.headers, admins["id"], body)
        assert same.status_code == 204, same.text
    put = await client.put(
        f"{SCIM}/Groups/{admins['id']}", json=scim_group("ADMIN"), headers=owner.headers
    )
    assert put.status_code == 200, put.text
    assert put.json()["displayName"] == "admin"
    renamed = await client.put(
        f"{SCIM}/Groups/{admins['id']}", json=scim_group("Admins"), headers=owner.headers
    )
    assert "displayName" in is_error(renamed, 400, "mutability")


async def test_names_and_display_names_share_one_namespace(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """A display name may not be another role's name, nor a name another role's display
    name, compared NFKC and case folded: "ops" never shows for a role other than ops."""
    made = await client.post(
        "/api/v1/roles",
        json={"name": "ops", "display_name": "Operations", "permissions": []},
        headers=owner.headers,
    )
    assert made.status_code == 201, made.text
    shadow = await client.post(f"{SCIM}/Groups", json=scim_group("OPS"), headers=owner.headers)
    assert "displayName" in is_error(shadow, 409, "uniqueness")
    named = await client.post(
        "/api/v1/roles", json={"name": "operations", "permissions": []}, headers=owner.headers
    )
    assert named.status_code == 409 and named.json()["field"] == "name", named.text
    assert "ops" in named.text
    for look_alike in ("ＯＷＮＥＲ", "Ｏｐｓ", "ＯＰＥＲＡＴＩＯＮＳ"):
        refused = await client.post(
            f"{SCIM}/Groups", json=scim_group(look_alike), headers=owner.headers
        )
        assert "displayName" in is_error(refused, 409, "uniqueness")
    # Renames keep to it too, and a role may take its own name in another case.
    plain = await client.post(
        "/api/v1/roles", json={"name": "crew", "permissions": []}, headers=owner.headers
    )
    assert plain.status_code == 201, plain.text
    clash = await client.patch(
        "/api/v1/roles/crew", json={"name": "operations"}, headers=owner.headers
    )
    assert clash.status_code == 409, clash.text
    own = await client.patch(
        "/api/v1/roles/crew", json={"display_name": "CREW"}, headers=owner.headers
    )
    assert own.status_code == 200 and own.json()["display_name"] == "CREW", own.text
    # A group slugged to another role's display name gets a numbered name instead.
    shown = await client.patch(
        "/api/v1/roles/crew", json={"display_name": "squad"}, headers=owner.headers
    )
    assert shown.status_code == 200, shown.text
    squad = await make_group(client, owner, scim_group("Squad!"))
    roles = (await client.get("/api/v1/roles", headers=owner.headers)).json()["items"]
    assert {r["name"] for r in roles if r["id"] == squad["id"]} == {"squad-2"}


async def test_nobody_adds_a_member_to_a_group_holding_more_than_they_do(
    client: httpx.AsyncClient, database: Database, owner: Account, directory: Directory
) -> None:
    (ann,) = await people(client, owner, "ann")
    idp = await restricted(
        database,
        "idp",
        ["users.provision", "users.read", "roles.assign", "roles.manage", "profile.edit"],
    )
    admins = await group_named(client, owner, "admin")
    refused = await patch(
        client, idp, admins["id"], {"op": "add", "path": "members", "value": [{"value": ann}]}
    )
    is_error(refused, 403)
    assert await roles_of(client, owner, ann) == ["user"]
    # A custom role holding a permission the token lacks, made by the owner.
    made = await client.post(
        "/api/v1/roles",
        json={"name": "auditors", "display_name": "Auditors", "permissions": ["audit.read"]},
        headers=owner.headers,
    )
    assert made.status_code == 201, made.text
    auditors = made.json()["id"]
    denied = await patch(
        client, idp, auditors, {"op": "add", "path": "members", "value": [{"value": ann}]}
    )
    assert "audit.read" in is_error(denied, 403)
    # A group holding nothing more than the token does: allowed.
    plain = await client.post(f"{SCIM}/Groups", json=scim_group("Plain", ann), headers=idp)
    assert plain.status_code == 201, plain.text


# --- ETags ---------------------------------------------------------------------------------


async def test_if_match_refuses_a_stale_write(client: httpx.AsyncClient, owner: Account) -> None:
    # Made in turn, so their row ids run on: {ann, dan} and {bob, cat} have the same count
    # and the same sum of ids, which a digest of the holders could not tell apart.
    ann, bob, cat, dan = await people(client, owner, "ann", "bob", "cat", "dan")
    group = await make_group(client, owner, scim_group("Tagged", ann, dan))
    first = group["meta"]["version"]
    cached = await client.get(
        f"{SCIM}/Groups/{group['id']}", headers={**owner.headers, "If-None-Match": first}
    )
    assert cached.status_code == 304
    swapped = await client.put(
        f"{SCIM}/Groups/{group['id']}", json=scim_group("Tagged", bob, cat), headers=owner.headers
    )
    assert swapped.status_code == 200, swapped.text
    second = swapped.json()["meta"]["version"]
    assert second != first
    uncached = await client.get(
        f"{SCIM}/Groups/{group['id']}", headers={**owner.headers, "If-None-Match": first}
    )
    assert uncached.status_code == 200 and member_ids(uncached.json()) == {bob, cat}
    for method, kwargs in (
        (
            "PATCH",
            {"json": {"schemas": [PATCH], "Operations": [{"op": "remove", "path": "members"}]}},
        ),
        ("PUT", {"json": scim_group("Tagged")}),
        ("DELETE", {}),
    ):
        stale = await client.request(
            method,
            f"{SCIM}/Groups/{group['id']}",
            headers={**owner.headers, "If-Match": first},
            **kwargs,
        )
        is_error(stale, 412)
    assert member_ids(await read(client, owner, group["id"])) == {bob, cat}
    # A member taken away through the native API changes the group's ETag too.
    native = await client.put(
        f"/api/v1/users/{cat}/roles", json={"roles": ["user"]}, headers=owner.headers
    )
    assert native.status_code == 200, native.text
    third = (await read(client, owner, group["id"]))["meta"]["version"]
    assert third not in (first, second)
    is_error(
        await patch(
            client,
            {**owner.headers, "If-Match": second},
            group["id"],
            {"op": "replace", "path": "displayName", "value": "Tagged Again"},
        ),
        412,
    )
    fresh = await patch(
        client,
        {**owner.headers, "If-Match": third},
        group["id"],
        {"op": "replace", "path": "displayName", "value": "Tagged Again"},
    )
    assert fresh.status_code == 204, fresh.text


# --- concurrency and the size of one request ------------------------------------------------------


async def _hold_user_then_the_owner_role(database: Database, user_id: str, write: Any) -> Any:
    """Replays a native role change of `user_id` taking the owner role away, step by step:
    another transaction locks that user (as set_roles does first); the group write starts
    and must wait for that user holding no role, so the other transaction can still lock the
    owner role (as ensure_another_active_owner does next). Returns the write's response."""
    async with database.transaction() as other:
        await other.execute(text("SET LOCAL lock_timeout = '3s'"))
        await other.execute(select(User.id).where(User.public_id == user_id).with_for_update())
        task = asyncio.create_task(write)
        await asyncio.sleep(0.5)  # the group write is now waiting for that user
        assert not task.done()
        await other.execute(select(Role.id).where(Role.name == "owner").with_for_update())
    return await task


@postgres_only
async def test_a_group_write_locks_its_members_before_any_role(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    """A PATCH of the owner group adding X and removing Y held the owner role (granted to X)
    while it waited for Y, whom a native role change had locked and wanted the owner role
    for: a deadlock on PostgreSQL (500)."""
    x = (await directory.create("xena"))["id"]
    y = (await directory.create("yves", roles=["owner"]))["id"]
    owners = await group_named(client, owner, "owner")
    response = await _hold_user_then_the_owner_role(
        database,
        y,
        patch(
            client,
            owner.headers,
            owners["id"],
            {"op": "add", "path": "members", "value": [{"value": x}]},
            {"op": "remove", "path": f'members[value eq "{y}"]'},
        ),
    )
    assert response.status_code == 204, response.text
    assert await roles_of(client, owner, x) == ["owner", "user"]
    assert await roles_of(client, owner, y) == ["user"]


@postgres_only
async def test_deleting_a_group_locks_its_holders_before_any_role(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    """Deleting a group took the role from its holders one by one, each taking the plain
    role and a share of the owner role held by an owner among them, while it waited for the
    next holder."""
    x = (await directory.create("xena", roles=["owner"]))["id"]
    y = (await directory.create("yves", roles=["owner"]))["id"]
    group = await make_group(client, owner, scim_group("Crew", x, y))
    response = await _hold_user_then_the_owner_role(
        database, y, client.delete(f"{SCIM}/Groups/{group['id']}", headers=owner.headers)
    )
    assert response.status_code == 204, response.text
    assert await roles_of(client, owner, y) == ["owner"]


@postgres_only
async def test_a_group_write_locks_the_roles_it_moves_in_row_order(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    """Adding A to crew locked crew; removing B, whose only role it was, then wanted the
    plain role for B. A role change locking both in row order (user, then crew) held user
    and wanted crew: a deadlock. Replayed: another transaction holds the plain role; the
    group write must wait for it holding no role, so the other can still lock crew."""
    crew = await make_group(client, owner, scim_group("Crew"))
    a = (await directory.create("ayla"))["id"]
    b = (await directory.create("bram", roles=["crew"]))["id"]
    async with database.transaction() as other:
        await other.execute(text("SET LOCAL lock_timeout = '3s'"))
        await other.execute(select(Role.id).where(Role.name == "user").with_for_update())
        task = asyncio.create_task(
            patch(
                client,
                owner.headers,
                crew["id"],
                {"op": "add", "path": "members", "value": [{"value": a}]},
                {"op": "remove", "path": f'members[value eq "{b}"]'},
            )
        )
        await asyncio.sleep(0.5)  # the group write is now waiting for the plain role
        assert not task.done()
        await other.execute(select(Role.id).where(Role.name == "crew").with_for_update())
    response = await task
    assert response.status_code == 204, response.text
    assert await roles_of(client, owner, a) == ["crew", "user"]
    assert await roles_of(client, owner, b) == ["user"]


@postgres_only
async def test_a_role_change_that_waited_for_the_user_reads_their_roles_as_committed(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    """A role change waiting for a user that a group write had locked read, once it had the
    lock, the user's row as committed and their roles as before that write, in one
    statement: it then deleted a role link already gone (StaleDataError, a 500)."""
    y = (await directory.create("yves", roles=["owner"]))["id"]
    async with database.transaction() as other:
        await other.execute(text("SET LOCAL lock_timeout = '3s'"))
        await user_actions.set_roles(other, actor=Actor.system("test"), user_id=y, roles=["admin"])
        task = asyncio.create_task(
            client.put(f"/api/v1/users/{y}/roles", json={"roles": ["user"]}, headers=owner.headers)
        )
        await asyncio.sleep(0.5)  # the native change is now waiting for yves
        assert not task.done()
    response = await task
    assert response.status_code == 200, response.text
    assert await roles_of(client, owner, y) == ["user"]


async def test_a_group_write_and_native_role_changes_at_once(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    """Both sides for real, side by side: each request succeeds and the outcome is both."""
    owners = await group_named(client, owner, "owner")
    for round_ in range(6):
        x = (await directory.create(f"x{round_}"))["id"]
        y = (await directory.create(f"y{round_}", roles=["owner"]))["id"]
        written, demoted = await asyncio.gather(
            patch(
                client,
                owner.headers,
                owners["id"],
                {"op": "add", "path": "members", "value": [{"value": x}]},
                {"op": "remove", "path": f'members[value eq "{y}"]'},
            ),
            client.put(f"/api/v1/users/{y}/roles", json={"roles": ["user"]}, headers=owner.headers),
        )
        assert written.status_code == 204, written.text
        assert demoted.status_code == 200, demoted.text
        assert await roles_of(client, owner, x) == ["owner", "user"]
        assert await roles_of(client, owner, y) == ["user"]


async def test_one_request_changes_at_most_so_many_members(
    client: httpx.AsyncClient, owner: Account, database: Database, monkeypatch: Any
) -> None:
    """The changes are counted as they really are (a removal of every member, a PUT's
    difference, a deletion's holders), not as the ids the request names; beyond the cap
    the request is refused with nothing written."""
    monkeypatch.setattr(role_actions, "MAX_MEMBER_CHANGES", 3)
    monkeypatch.setattr("userdesk.http.scim.groups.MAX_MEMBER_CHANGES", 3)
    ids = await people(client, owner, "ann", "bob", "cat", "dan", "eve")
    group = await make_group(client, owner, scim_group("Big", *ids[:3]))
    grown = await patch(
        client, owner.headers, group["id"], {"op": "add", "path": "members", "value": ids[3:]}
    )
    assert grown.status_code == 204, grown.text
    everyone = set(ids)
    for refused in (
        await patch(client, owner.headers, group["id"], {"op": "remove", "path": "members"}),
        await patch(
            client,
            owner.headers,
            group["id"],
            {"op": "replace", "path": "members", "value": []},
        ),
        await client.put(
            f"{SCIM}/Groups/{group['id']}", json=scim_group("Big", ids[0]), headers=owner.headers
        ),
        await client.delete(f"{SCIM}/Groups/{group['id']}", headers=owner.headers),
    ):
        detail = is_error(refused, 400, "tooMany")
        assert "members" in detail and "smaller PATCH" in detail
        assert member_ids(await read(client, owner, group["id"])) == everyone
    # A PUT listing everyone but changing few is within the cap.
    kept = await client.put(
        f"{SCIM}/Groups/{group['id']}", json=scim_group("Big", *ids[:4]), headers=owner.headers
    )
    assert kept.status_code == 200, kept.text
    assert member_ids(kept.json()) == set(ids[:4])


# --- DELETE --------------------------------------------------------------------------------------


async def test_delete_takes_the_role_from_its_holders(
    client: httpx.AsyncClient, database: Database, owner: Account
) -> None:
    ann, bob = await people(client, owner, "ann", "bob")
    group = await make_group(client, owner, scim_group("Leaving", ann, bob))
    response = await client.delete(f"{SCIM}/Groups/{group['id']}", headers=owner.headers)
    assert response.status_code == 204, response.text
    is_error(await client.get(f"{SCIM}/Groups/{group['id']}", headers=owner.headers), 404)
    assert await roles_of(client, owner, ann) == ["user"]
    assert (await client.get("/api/v1/roles/leaving", headers=owner.headers)).status_code == 404
    async with database.reader() as session:
        actions = [
            (entry.action, entry.target_name)
            for entry in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert actions[-3:] == [
        ("user.roles_changed", "ann"),
        ("user.roles_changed", "bob"),
        ("role.deleted", "leaving"),
    ]
    is_error(await client.delete(f"{SCIM}/Groups/{group['id']}", headers=owner.headers), 404)


# --- the native API --------------------------------------------------------------------------


async def test_native_roles_api_sets_and_shows_the_display_name(
    client: httpx.AsyncClient, owner: Account
) -> None:
    made = await client.post(
        "/api/v1/roles", json={"name": "editors", "permissions": []}, headers=owner.headers
    )
    assert made.status_code == 201, made.text
    role = made.json()
    assert role["display_name"] == "editors" and role["external_id"] is None
    # A rename carries a display name nobody set apart; the id stays.
    renamed = await client.patch(
        "/api/v1/roles/editors", json={"name": "writers"}, headers=owner.headers
    )
    assert renamed.json()["display_name"] == "writers" and renamed.json()["id"] == role["id"]
    named = await client.patch(
        "/api/v1/roles/writers", json={"display_name": "Writers' Room"}, headers=owner.headers
    )
    assert named.status_code == 200, named.text
    again = await client.patch(
        "/api/v1/roles/writers", json={"name": "authors"}, headers=owner.headers
    )
    assert again.json()["display_name"] == "Writers' Room"
    group = await read(client, owner, role["id"])
    assert group["displayName"] == "Writers' Room"
    clash = await client.patch(
        "/api/v1/roles/authors", json={"display_name": "OWNER"}, headers=owner.headers
    )
    assert clash.status_code == 409, clash.text
    built_in = await client.patch(
        "/api/v1/roles/admin", json={"display_name": "Admins"}, headers=owner.headers
    )
    assert built_in.status_code == 409, built_in.text


# --- migration 0010 ------------------------------------------------------------------------------


def _migrate(connection: Any, revision: str, *, down: bool = False) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(config, revision)


def _role_columns(connection: Any) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns("roles")}


async def test_migration_0010_goes_down_and_up_again(database: Database, owner: Account) -> None:
    """Down and up again: the new columns go and come back, filled; every role keeps its
    holders (a rebuild of roles on SQLite would have run user_roles' ON DELETE CASCADE)."""
    new = {"public_id", "display_name", "display_name_key", "external_id", "version"}
    olive = owner.id
    async with database.engine.connect() as connection:
        assert new <= await connection.run_sync(_role_columns)
        await connection.run_sync(_migrate, "0009", down=True)
        await connection.commit()
        assert not new & await connection.run_sync(_role_columns)
        await connection.execute(
            text(
                "INSERT INTO roles (name, description, permissions, built_in, created_at, "
                "updated_at) VALUES ('old-team', '', '[]', false, CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO user_roles (user_id, role_id) SELECT u.id, r.id FROM users u, "
                "roles r WHERE u.public_id = :user AND r.name = 'old-team'"
            ),
            {"user": olive},
        )
        await connection.commit()
        await connection.run_sync(_migrate, "head")
        await connection.commit()
        memberships = set(
            await connection.execute(
                text(
                    "SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id "
                    "JOIN users u ON u.id = ur.user_id WHERE u.public_id = :user"
                ),
                {"user": olive},
            )
        )
        rows = (
            await connection.execute(
                text("SELECT name, public_id, display_name, display_name_key, version FROM roles")
            )
        ).all()
    assert len(rows) == 7
    assert len({row.public_id for row in rows}) == 7
    assert all(len(row.public_id) == 36 for row in rows)
    assert all(row.display_name == row.name == row.display_name_key for row in rows)
    assert all(row.version == 1 for row in rows)
    assert {row.name for row in memberships} == {"owner", "old-team"}


@pytest.mark.parametrize("path", ["displayName", f"{GROUP}:displayName"])
async def test_a_path_with_or_without_the_schema_renames(
    client: httpx.AsyncClient, owner: Account, path: str
) -> None:
    group = await make_group(client, owner, scim_group("Before"))
    response = await patch(
        client, owner.headers, group["id"], {"op": "replace", "path": path, "value": "After"}
    )
    assert response.status_code == 204, response.text
    assert (await read(client, owner, group["id"]))["displayName"] == "After"


async def test_the_token_the_readme_shows_can_push_groups(
    client: httpx.AsyncClient, database: Database, owner: Account
) -> None:
    """README.md's restricted token for an identity provider pushes groups too."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    command = readme[readme.index("tokens create --user admin --name entra-id") :]
    command = command[: command.index("```")]
    idp = await restricted(database, "entra-id", re.findall(r"--permission (\S+)", command))
    (ann,) = await people(client, owner, "ann")
    made = await client.post(f"{SCIM}/Groups", json=scim_group("Pushed", ann), headers=idp)
    assert made.status_code == 201, made.text
    group_id = made.json()["id"]
    removed = await patch(client, idp, group_id, {"op": "Remove", "path": "members"})
    assert removed.status_code == 204, removed.text
    assert (await client.delete(f"{SCIM}/Groups/{group_id}", headers=idp)).status_code == 204
