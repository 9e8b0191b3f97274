"""Roles and the rules about who may do what to whom, through the REST API.

Built-in and custom roles; "nobody grants more than they hold"; "nobody acts on a user whose
roles outrank theirs"; Make Admin and Remove Admin as role changes; the last active owner,
also under concurrent requests; and self-service profile edits.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import Account, Directory, mint_token
from userdesk.actions.context import Actor
from userdesk.actions.inputs import UserCreate
from userdesk.actions.users import bootstrap_owner
from userdesk.db import Database
from userdesk.models import Role
from userdesk.security.permissions import ADMIN, BUILT_IN_ROLES, USER_MANAGER

# What an admin holds and a user-manager lacks: acting on an admin needs one of these.
ADMIN_OVER_MANAGER = {str(p) for p in BUILT_IN_ROLES[ADMIN][1] - BUILT_IN_ROLES[USER_MANAGER][1]}


def assert_problem(
    response: httpx.Response, status: int, code: str, **fields: Any
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    for name, value in fields.items():
        assert body.get(name) == value, body
    return body


async def active_owner(database: Database, username: str) -> Account:
    """A second owner who is active at once, as `userdesk create-owner` makes one."""
    async with database.transaction() as session:
        user = await bootstrap_owner(
            session,
            actor=Actor.system("test"),
            data=UserCreate(
                name=username.title(), username=username, email=f"{username}@example.com"
            ),
        )
        user_id = user.public_id
    return Account(user_id, username, await mint_token(database, username))


async def read_user(client: httpx.AsyncClient, owner: Account, user_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/users/{user_id}", headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def roles_by_name(client: httpx.AsyncClient, account: Account) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/v1/roles", headers=account.headers)
    assert response.status_code == 200, response.text
    return {role["name"]: role for role in response.json()["items"]}


async def act(
    client: httpx.AsyncClient, actor: Account, action: str, target_id: str
) -> httpx.Response:
    """One of the actions on a user, by name, as `actor`."""
    url = f"/api/v1/users/{target_id}"
    if action == "deactivate":
        return await client.post(f"{url}/deactivate", headers=actor.headers)
    if action == "edit":
        return await client.patch(url, json={"name": "Renamed"}, headers=actor.headers)
    if action == "delete":
        return await client.delete(url, headers=actor.headers)
    if action == "demote":
        return await client.put(f"{url}/roles", json={"roles": ["admin"]}, headers=actor.headers)
    raise AssertionError(action)


# --- built-in roles ---------------------------------------------------------------------------


async def test_role_list_shows_every_built_in_role_with_its_permissions_and_holder_count(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    await directory.create("mia", roles=["user-manager"])
    await directory.create("ursula", roles=["user"])
    await directory.create("umberto")  # the default role is "user"
    guest = await directory.account("gus", roles=["guest"])

    roles = await roles_by_name(client, guest)  # every signed-in user may read the roles

    assert set(roles) == set(BUILT_IN_ROLES)
    for name, (description, permissions) in BUILT_IN_ROLES.items():
        assert roles[name]["built_in"] is True
        assert roles[name]["description"] == description
        assert roles[name]["permissions"] == sorted(permissions)
    holders = {name: role["users"] for name, role in roles.items()}
    assert holders == {"owner": 1, "admin": 0, "user-manager": 1, "user": 2, "guest": 1, "bot": 0}
    anonymous = await client.get("/api/v1/roles")
    assert_problem(anonymous, 401, "unauthenticated")


async def test_the_migration_seeds_exactly_the_built_in_roles_the_code_defines(
    database: Database,
) -> None:
    async with database.reader() as session:
        rows = list(await session.scalars(select(Role)))
    assert all(role.built_in for role in rows)
    seeded = {role.name: (role.description, set(role.permissions)) for role in rows}
    defined = {name: (d, {str(p) for p in ps}) for name, (d, ps) in BUILT_IN_ROLES.items()}
    assert seeded == defined


@pytest.mark.parametrize("name", sorted(BUILT_IN_ROLES))
async def test_built_in_roles_cannot_be_changed_or_deleted(
    client: httpx.AsyncClient, owner: Account, name: str
) -> None:
    before = (await roles_by_name(client, owner))[name]
    changed = await client.patch(
        f"/api/v1/roles/{name}",
        json={"description": "mine now", "permissions": []},
        headers=owner.headers,
    )
    assert_problem(changed, 409, "built_in_role", field="name")
    deleted = await client.delete(f"/api/v1/roles/{name}", headers=owner.headers)
    assert_problem(deleted, 409, "built_in_role")
    assert (await client.get(f"/api/v1/roles/{name}", headers=owner.headers)).json() == before


# --- custom roles -----------------------------------------------------------------------------


async def test_owner_creates_reads_edits_and_deletes_a_custom_role(
    client: httpx.AsyncClient, owner: Account
) -> None:
    created = await client.post(
        "/api/v1/roles",
        json={
            "name": "helpdesk",
            "description": "Front line",
            "permissions": ["users.read", "users.reset_credentials", "users.read"],
        },
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/api/v1/roles/helpdesk"
    assert created.json() == {
        "name": "helpdesk",
        # The role as a SCIM group: a stable id, and a display name following the name.
        "id": created.json()["id"],
        "display_name": "helpdesk",
        "external_id": None,
        "description": "Front line",
        "built_in": False,
        "users": 0,
        "permissions": ["users.read", "users.reset_credentials"],
    }
    fetched = await client.get("/api/v1/roles/helpdesk", headers=owner.headers)
    assert fetched.json() == created.json()

    edited = await client.patch(
        "/api/v1/roles/helpdesk",
        json={"name": "support", "permissions": ["users.read", "users.edit"]},
        headers=owner.headers,
    )
    assert edited.status_code == 200, edited.text
    assert (await client.get("/api/v1/roles/helpdesk", headers=owner.headers)).status_code == 404
    reread = (await client.get("/api/v1/roles/support", headers=owner.headers)).json()
    assert reread == edited.json()
    assert reread["id"] == created.json()["id"] and reread["display_name"] == "support"
    assert reread["permissions"] == ["users.edit", "users.read"]
    assert reread["description"] == "Front line"

    deleted = await client.delete("/api/v1/roles/support", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    gone = await client.get("/api/v1/roles/support", headers=owner.headers)
    assert_problem(gone, 404, "not_found")
    assert set(await roles_by_name(client, owner)) == set(BUILT_IN_ROLES)

    audit = await client.get("/api/v1/audit", params={"target": "support"}, headers=owner.headers)
    assert [entry["action"] for entry in audit.json()["items"]] == ["role.deleted", "role.updated"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "helpdesk", "permissions": ["users.read", "users.fly"]}, "permissions"),
        ({"name": "HelpDesk"}, "name"),
        ({"name": "help desk"}, "name"),
        ({"name": "h" * 65}, "name"),
        ({"name": "-helpdesk"}, "name"),
    ],
    ids=["unknown-permission", "uppercase", "space", "too-long", "leading-dash"],
)
async def test_a_role_with_invalid_input_is_refused_naming_the_field(
    client: httpx.AsyncClient, owner: Account, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/v1/roles", json=body, headers=owner.headers)
    problem = assert_problem(response, 422, "invalid_input")
    assert field in {error["field"] for error in problem["errors"]}
    assert set(await roles_by_name(client, owner)) == set(BUILT_IN_ROLES)


async def test_a_role_name_already_taken_is_a_duplicate(
    client: httpx.AsyncClient, owner: Account
) -> None:
    for name in ("helpdesk", "auditor"):
        response = await client.post("/api/v1/roles", json={"name": name}, headers=owner.headers)
        assert response.status_code == 201, response.text
    for name in ("helpdesk", "admin"):
        again = await client.post(
            "/api/v1/roles",
            json={"name": name, "permissions": ["users.read"]},
            headers=owner.headers,
        )
        assert_problem(again, 409, "duplicate", field="name")
    renamed = await client.patch(
        "/api/v1/roles/auditor", json={"name": "helpdesk"}, headers=owner.headers
    )
    assert_problem(renamed, 409, "duplicate", field="name")
    roles = await roles_by_name(client, owner)
    assert {"helpdesk", "auditor"} <= set(roles)
    assert roles["helpdesk"]["permissions"] == []


async def test_a_role_held_by_a_user_cannot_be_deleted_until_taken_away(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    await client.post("/api/v1/roles", json={"name": "helpdesk"}, headers=owner.headers)
    user = await directory.create("hana", roles=["user", "helpdesk"])

    refused = await client.delete("/api/v1/roles/helpdesk", headers=owner.headers)
    assert_problem(refused, 409, "role_in_use", field="name")
    assert (await client.get("/api/v1/roles/helpdesk", headers=owner.headers)).json()["users"] == 1
    assert (await read_user(client, owner, user["id"]))["roles"] == ["helpdesk", "user"]

    taken = await client.put(
        f"/api/v1/users/{user['id']}/roles", json={"roles": ["user"]}, headers=owner.headers
    )
    assert taken.status_code == 200, taken.text
    deleted = await client.delete("/api/v1/roles/helpdesk", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text


# --- nobody grants more than they hold --------------------------------------------------------


@pytest.mark.parametrize(
    "actor_role, permissions, missing",
    [
        ("admin", ["users.read", "owners.manage"], {"owners.manage"}),
        ("user-manager", [], {"roles.manage"}),
        ("user-manager", ["users.read"], {"roles.manage"}),
    ],
)
async def test_nobody_creates_a_role_beyond_the_permissions_they_hold(
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    actor_role: str,
    permissions: list[str],
    missing: set[str],
) -> None:
    actor = await directory.account("actor", roles=[actor_role])
    response = await client.post(
        "/api/v1/roles", json={"name": "sneaky", "permissions": permissions}, headers=actor.headers
    )
    assert assert_problem(response, 403, "permission_denied")["permission"] in missing
    assert "sneaky" not in await roles_by_name(client, owner)


async def test_an_admin_cannot_edit_or_delete_a_role_carrying_owners_manage(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    await client.post(
        "/api/v1/roles",
        json={"name": "co-owner", "permissions": ["owners.manage"]},
        headers=owner.headers,
    )
    before = (await roles_by_name(client, owner))["co-owner"]
    admin = await directory.account("ada", roles=["admin"])
    edited = await client.patch(
        "/api/v1/roles/co-owner", json={"permissions": []}, headers=admin.headers
    )
    assert_problem(edited, 403, "permission_denied", permission="owners.manage")
    deleted = await client.delete("/api/v1/roles/co-owner", headers=admin.headers)
    assert_problem(deleted, 403, "permission_denied", permission="owners.manage")
    assert (await roles_by_name(client, owner))["co-owner"] == before


@pytest.mark.parametrize(
    "actor_role, new_roles, missing",
    [
        ("admin", ["owner"], {"owners.manage"}),
        ("admin", ["user", "owner"], {"owners.manage"}),
        ("user-manager", ["admin"], ADMIN_OVER_MANAGER),
        ("user-manager", ["user", "admin"], ADMIN_OVER_MANAGER),
        ("user-manager", ["owner"], ADMIN_OVER_MANAGER | {"owners.manage"}),
    ],
)
async def test_nobody_grants_a_role_carrying_a_permission_they_lack(
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    actor_role: str,
    new_roles: list[str],
    missing: set[str],
) -> None:
    actor = await directory.account("actor", roles=[actor_role])
    target = await directory.create("tess", roles=["user"])
    for target_id in (target["id"], actor.id):  # nor to themselves
        before = await read_user(client, owner, target_id)
        response = await client.put(
            f"/api/v1/users/{target_id}/roles", json={"roles": new_roles}, headers=actor.headers
        )
        assert assert_problem(response, 403, "permission_denied")["permission"] in missing
        assert await read_user(client, owner, target_id) == before


async def test_a_user_manager_gives_and_takes_the_guest_and_user_roles(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    manager = await directory.account("mia", roles=["user-manager"])
    target = await directory.create("tess", roles=["user"])
    for roles in (["guest"], ["user"], ["guest", "user"]):
        response = await client.put(
            f"/api/v1/users/{target['id']}/roles", json={"roles": roles}, headers=manager.headers
        )
        assert response.status_code == 200, response.text
        assert (await read_user(client, owner, target["id"]))["roles"] == sorted(roles)


# --- nobody acts on a user whose roles outrank theirs -----------------------------------------


@pytest.mark.parametrize(
    "actor_role, target_roles, action, missing",
    [
        *(
            ("admin", ["owner"], action, {"owners.manage"})
            for action in ("deactivate", "edit", "delete", "demote")
        ),
        *(
            ("user-manager", ["admin"], action, ADMIN_OVER_MANAGER)
            for action in ("deactivate", "edit", "demote")
        ),
        ("user-manager", ["user", "helpdesk"], "edit", {"users.delete"}),
    ],
)
async def test_nobody_acts_on_a_user_whose_roles_outrank_theirs(
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    actor_role: str,
    target_roles: list[str],
    action: str,
    missing: set[str],
) -> None:
    if "helpdesk" in target_roles:  # a custom role can outrank a built-in one
        await client.post(
            "/api/v1/roles",
            json={"name": "helpdesk", "permissions": ["users.delete"]},
            headers=owner.headers,
        )
    actor = await directory.account("actor", roles=[actor_role])
    target_id = (
        owner.id
        if target_roles == ["owner"]
        else (await directory.create("tara", roles=target_roles))["id"]
    )
    before = await read_user(client, owner, target_id)
    response = await act(client, actor, action, target_id)
    assert assert_problem(response, 403, "permission_denied")["permission"] in missing
    assert await read_user(client, owner, target_id) == before


async def test_an_owner_edits_demotes_deactivates_and_deletes_an_admin(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    admin = await directory.create("ada", roles=["admin"])
    url = f"/api/v1/users/{admin['id']}"
    edited = await client.patch(url, json={"name": "Ada L."}, headers=owner.headers)
    assert edited.status_code == 200, edited.text
    demoted = await client.put(f"{url}/roles", json={"roles": ["user"]}, headers=owner.headers)
    assert demoted.status_code == 200, demoted.text
    deactivated = await client.post(f"{url}/deactivate", headers=owner.headers)
    assert deactivated.status_code == 200, deactivated.text
    reread = await read_user(client, owner, admin["id"])
    assert (reread["name"], reread["roles"]) == ("Ada L.", ["user"])
    assert reread["status"] == "deactivated"
    deleted = await client.delete(url, headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    assert_problem(await client.get(url, headers=owner.headers), 404, "not_found")


async def test_a_user_manager_edits_and_deactivates_a_plain_user(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    manager = await directory.account("mia", roles=["user-manager"])
    target = await directory.create("tess", roles=["user"])
    assert (await act(client, manager, "edit", target["id"])).status_code == 200
    assert (await act(client, manager, "deactivate", target["id"])).status_code == 200
    reread = await read_user(client, owner, target["id"])
    assert (reread["name"], reread["status"]) == ("Renamed", "deactivated")
    refused = await act(client, manager, "delete", target["id"])
    assert_problem(refused, 403, "permission_denied", permission="users.delete")


# --- Make Admin and Remove Admin --------------------------------------------------------------


async def test_make_admin_and_remove_admin_are_role_changes_recorded_in_the_audit_log(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create("tess", roles=["user"])
    url = f"/api/v1/users/{user['id']}/roles"

    made = await client.put(url, json={"roles": ["user", "admin"]}, headers=owner.headers)
    assert made.status_code == 200, made.text
    assert made.json()["roles"] == ["admin", "user"]
    assert (await read_user(client, owner, user["id"]))["roles"] == ["admin", "user"]
    same = await client.put(url, json={"roles": ["admin", "user"]}, headers=owner.headers)
    assert same.status_code == 200, same.text
    removed = await client.put(url, json={"roles": ["user"]}, headers=owner.headers)
    assert removed.status_code == 200, removed.text
    assert (await read_user(client, owner, user["id"]))["roles"] == ["user"]

    audit = await client.get(
        "/api/v1/audit",
        params={"target": user["id"], "action": "user.roles_changed"},
        headers=owner.headers,
    )
    assert audit.status_code == 200, audit.text
    entries = audit.json()["items"]  # newest first; the no-op left no entry
    assert [entry["changes"] for entry in entries] == [
        {"roles": {"before": ["admin", "user"], "after": ["user"]}},
        {"roles": {"before": ["user"], "after": ["admin", "user"]}},
    ]
    assert {entry["actor"]["id"] for entry in entries} == {owner.id}
    assert {entry["target"]["name"] for entry in entries} == {"tess"}


@pytest.mark.parametrize(
    "roles, code",
    [(["user", "wizard"], "unknown_role"), ([], "too_short")],
    ids=["unknown-role", "empty-list"],
)
async def test_setting_unknown_or_no_roles_is_invalid_input_naming_roles(
    client: httpx.AsyncClient, owner: Account, directory: Directory, roles: list[str], code: str
) -> None:
    user = await directory.create("tess", roles=["user"])
    response = await client.put(
        f"/api/v1/users/{user['id']}/roles", json={"roles": roles}, headers=owner.headers
    )
    body = assert_problem(response, 422, "invalid_input")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("roles", code)]
    assert await read_user(client, owner, user["id"]) == user


# --- the last active owner --------------------------------------------------------------------


@pytest.mark.parametrize("action", ["demote", "deactivate", "delete"])
async def test_the_last_active_owner_cannot_be_demoted_deactivated_or_deleted(
    client: httpx.AsyncClient, owner: Account, directory: Directory, action: str
) -> None:
    # A pending owner has not signed in yet, so does not count as an active owner.
    pending_owner = await directory.account("pat", roles=["owner"])
    actors = [pending_owner] if action == "delete" else [owner, pending_owner]
    for actor in actors:
        response = await act(client, actor, action, owner.id)
        assert_problem(response, 409, "last_owner")
    reread = await read_user(client, owner, owner.id)
    assert (reread["status"], reread["roles"]) == ("active", ["owner"])


async def test_deleting_oneself_is_refused_with_its_own_conflict(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await active_owner(database, "oscar")
    response = await act(client, owner, "delete", owner.id)
    assert_problem(response, 409, "conflict")  # not "last_owner": another owner is active
    assert (await read_user(client, owner, owner.id))["status"] == "active"


async def test_of_two_active_owners_one_may_be_demoted_but_then_not_the_other(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    oscar = await active_owner(database, "oscar")
    demoted = await act(client, owner, "demote", oscar.id)
    assert demoted.status_code == 200, demoted.text
    assert (await read_user(client, owner, oscar.id))["roles"] == ["admin"]
    assert_problem(await act(client, owner, "demote", owner.id), 409, "last_owner")
    assert (await roles_by_name(client, owner))["owner"]["users"] == 1


async def active_owner_ids(client: httpx.AsyncClient, viewer: Account) -> set[str]:
    response = await client.get(
        "/api/v1/users",
        params={"role": "owner", "status": "active", "limit": 500},
        headers=viewer.headers,
    )
    assert response.status_code == 200, response.text
    return {user["id"] for user in response.json()["items"]}


@pytest.mark.parametrize("action", ["deactivate", "demote"])
async def test_two_owners_acting_on_each_other_at_once_leave_one_active_owner(
    client: httpx.AsyncClient, owner: Account, database: Database, action: str
) -> None:
    """Each round starts with exactly two active owners who turn on each other concurrently:
    exactly one request wins, and an active owner always remains."""
    observer = await active_owner(database, "observer")
    survivor = owner
    refused_by_the_rule = 0
    for round_number in range(20):
        rival = await active_owner(database, f"rival{round_number}")
        # The observer steps down so that survivor and rival are the only active owners.
        if round_number == 0:
            assert (await act(client, survivor, "demote", observer.id)).status_code == 200
        assert await active_owner_ids(client, observer) == {survivor.id, rival.id}

        first, second = await asyncio.gather(
            act(client, survivor, action, rival.id), act(client, rival, action, survivor.id)
        )

        assert [first.status_code, second.status_code].count(200) == 1, (first.text, second.text)
        loser = first if first.status_code != 200 else second
        # Refused by the rule, or already without the power to act when it was checked.
        assert (loser.status_code, loser.json()["code"]) in {
            (409, "last_owner"),
            (401, "unauthenticated"),
            (403, "permission_denied"),
        }, loser.text
        refused_by_the_rule += loser.status_code == 409
        remaining = await active_owner_ids(client, observer)
        assert len(remaining) == 1, remaining
        survivor = rival if remaining == {rival.id} else survivor
    # The requests really overlapped: some loser was authorised and then stopped by the rule.
    assert refused_by_the_rule > 0


# --- self-service -----------------------------------------------------------------------------


async def test_a_user_edits_their_own_name_and_bio(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.account("ursula", roles=["user"])
    response = await client.patch(
        f"/api/v1/users/{user.id}",
        json={"name": "Ursula K.", "bio": "Writes."},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    reread = await read_user(client, owner, user.id)
    assert (reread["name"], reread["bio"]) == ("Ursula K.", "Writes.")


@pytest.mark.parametrize(
    "role, whose, body, missing",
    [
        ("user", "own", {"email": "new@example.com"}, "users.edit"),
        ("user", "own", {"name": "Ursula", "email": "new@example.com"}, "users.edit"),
        ("user", "other", {"name": "Someone Else"}, "users.edit"),
        ("guest", "own", {"name": "Gus G."}, "profile.edit"),
    ],
    ids=["user-own-email", "user-own-name-and-email", "user-other-name", "guest-own-name"],
)
async def test_self_service_stops_at_ones_own_profile_fields(
    client: httpx.AsyncClient,
    owner: Account,
    directory: Directory,
    role: str,
    whose: str,
    body: dict[str, Any],
    missing: str,
) -> None:
    actor = await directory.account("actor", roles=[role])
    target_id = actor.id if whose == "own" else (await directory.create("other"))["id"]
    before = await read_user(client, owner, target_id)
    response = await client.patch(f"/api/v1/users/{target_id}", json=body, headers=actor.headers)
    assert_problem(response, 403, "permission_denied", permission=missing)
    assert await read_user(client, owner, target_id) == before
