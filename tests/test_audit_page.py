"""The Audit log page and its CSV export, over HTTP in process."""

from __future__ import annotations

import csv
import io
import json

import httpx

from tests.conftest import Account, Directory
from tests.test_console_http import ORIGIN, PASSWORD, sign_in


def results(page: httpx.Response) -> str:
    """The entries part of the page (the filter form lists every action name)."""
    return page.text.split('id="audit-results"', 1)[1]


async def _admin(directory: Directory) -> Account:
    return await directory.account("ada", roles=["admin"], password=PASSWORD)


async def test_filters_by_actor_target_action_and_day(
    client: httpx.AsyncClient, directory: Directory, owner: Account
) -> None:
    admin = await _admin(directory)
    bob = await directory.create("bob", as_=admin)
    await client.post(f"/api/v1/users/{bob['id']}/deactivate", headers=owner.headers)
    await sign_in(client, "ada")

    everything = await client.get("/audit")
    assert everything.status_code == 200
    assert "user.deactivated" in results(everything) and "auth.signed_in" in results(everything)

    by_actor = await client.get("/audit", params={"actor": "ada", "action": "user.created"})
    assert by_actor.status_code == 200
    assert by_actor.text.count('class="when"') == 1 and "bob" in by_actor.text

    by_target = await client.get("/audit", params={"target": "bob"})
    assert "user.created" in results(by_target) and "user.deactivated" in results(by_target)
    assert "auth.signed_in" not in results(by_target)
    # An id finds the entries about a user even after they are deleted.
    await client.delete(f"/api/v1/users/{bob['id']}", headers=owner.headers)
    by_id = await client.get("/audit", params={"target": bob["id"]})
    assert by_id.text.count('class="when"') == 3  # created, deactivated, deleted

    today = (await client.get("/api/v1/audit?limit=1", headers=owner.headers)).json()
    day = today["items"][0]["at"][:10]
    assert "user.deleted" in results(await client.get("/audit", params={"from": day, "to": day}))
    future = await client.get("/audit", params={"from": "2999-01-01"})
    assert "No entries match these filters" in future.text

    bad_day = await client.get("/audit", params={"from": "yesterday"})
    assert bad_day.status_code == 422 and "YYYY-MM-DD" in bad_day.text
    bad_action = await client.get("/audit", params={"action": "user.teleported"})
    assert bad_action.status_code == 422 and "unknown action" in bad_action.text


async def test_pages_of_fifty_newest_first(
    client: httpx.AsyncClient, directory: Directory, owner: Account
) -> None:
    await _admin(directory)
    for n in range(55):
        await directory.create(f"user{n:02}")
    await sign_in(client, "ada")
    first = await client.get("/audit", params={"action": "user.created"})
    assert first.text.count('class="when"') == 50
    assert first.text.index("user54") < first.text.index("user10")
    older = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = await client.get(older.replace("&amp;", "&"))
    assert second.text.count('class="when"') == 7  # user04 … user00, ada and olive
    assert "user00" in second.text and "user54" not in second.text


async def test_csv_export_has_every_match_and_defuses_formulas(
    client: httpx.AsyncClient, directory: Directory, owner: Account
) -> None:
    await _admin(directory)
    evil = await directory.create("eve", name='=HYPERLINK("http://evil.example","x")')
    for n in range(3):
        await directory.create(f"u{n}")
    # The user agent is whatever the caller sends: here, a spreadsheet formula.
    created = await client.post(
        "/api/v1/users",
        json={"name": "Mal", "username": "mal", "email": "mal@example.com"},
        headers={**owner.headers, "user-agent": "=1+2"},
    )
    assert created.status_code == 201
    await sign_in(client, "ada")
    answer = await client.get("/audit.csv", params={"action": "user.created"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert {r["target_name"] for r in rows} == {"olive", "ada", "eve", "u0", "u1", "u2", "mal"}
    mal = next(r for r in rows if r["target_name"] == "mal")
    assert mal["user_agent"] == "'=1+2"
    eve = next(r for r in rows if r["target_id"] == evil["id"])
    changes = json.loads(eve["changes"])
    assert changes["name"]["after"].startswith("=HYPERLINK")
    # The name cell itself is a snapshot of the username; a formula-like value is quoted.
    assert all(not r["actor_name"].startswith("=") for r in rows)
    assert not any(cell.startswith(("=", "+", "@")) for r in rows for cell in r.values())


async def test_needs_audit_read(client: httpx.AsyncClient, directory: Directory) -> None:
    await directory.account("max", roles=["user-manager"], password=PASSWORD)
    await sign_in(client, "max")
    for path in ("/audit", "/audit.csv"):
        refused = await client.get(path)
        assert refused.status_code == 403 and "audit.read" in refused.text, path
    assert ORIGIN


async def test_the_last_day_there_is(client: httpx.AsyncClient, directory: Directory) -> None:
    await _admin(directory)
    await sign_in(client, "ada")
    answer = await client.get("/audit", params={"from": "0001-01-01", "to": "9999-12-31"})
    assert answer.status_code == 200 and "auth.signed_in" in results(answer)


async def test_a_role_named_like_a_user_filters_as_the_role(
    client: httpx.AsyncClient, directory: Directory, owner: Account
) -> None:
    await _admin(directory)
    await directory.create("support")
    created = await client.post(
        "/api/v1/roles",
        json={"name": "support", "description": "Help desk", "permissions": ["users.read"]},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    await sign_in(client, "ada")
    by_role = results(await client.get("/audit", params={"target": "support"}))
    assert "role.created" in by_role and "user.created" not in by_role
