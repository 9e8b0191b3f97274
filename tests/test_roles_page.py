"""The Roles page over HTTP (in process): the answers, including the refusals no honest
browser would provoke (a crafted POST, a missing CSRF token, a built-in role's edit)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Account, Directory
from tests.test_console_http import ORIGIN, PASSWORD, sign_in


@pytest.fixture
async def admin(directory: Directory) -> Account:
    return await directory.account("ada", roles=["admin"], password=PASSWORD)


def htmx(token: str) -> dict[str, str]:
    return {**ORIGIN, "X-CSRF-Token": token, "HX-Request": "true"}


async def test_page_lists_roles_and_opens_one(client: httpx.AsyncClient, admin: Account) -> None:
    await sign_in(client, "ada")
    page = await client.get("/roles?role=user-manager")
    assert page.status_code == 200, page.text
    for name in ("owner", "admin", "user-manager", "user", "guest", "bot"):
        assert f'data-role="{name}"' in page.text
    assert "See every user in the directory <code>users.read</code>" in page.text
    assert 'href="/users?role=admin"' in page.text
    assert 'data-panel-user="role-user-manager"' in page.text
    assert "Built-in roles are read-only" in page.text
    # The panel alone for htmx; a role that is not there is a toast, not a 500.
    panel = await client.get(
        "/roles?role=guest", headers={"HX-Request": "true", "HX-Target": "panel"}
    )
    assert panel.status_code == 200 and 'data-panel-user="role-guest"' in panel.text
    assert "<html" not in panel.text
    missing = await client.get(
        "/roles?role=nope", headers={"HX-Request": "true", "HX-Target": "panel"}
    )
    assert missing.status_code == 404 and missing.headers["HX-Retarget"] == "#toasts"
    # A bookmark of a role since deleted shows the list.
    gone = await client.get("/roles?role=nope")
    assert gone.status_code == 200 and 'data-role="owner"' in gone.text


async def test_create_needs_roles_manage(client: httpx.AsyncClient, directory: Directory) -> None:
    await directory.account("mia", roles=["user-manager"], password=PASSWORD)
    token = await sign_in(client, "mia")
    page = await client.get("/roles")
    assert page.status_code == 200
    assert 'data-role="admin"' in page.text
    assert "New role" not in page.text and 'href="/roles?new=1"' not in page.text
    crafted = await client.post(
        "/roles",
        data={"csrf_token": token, "name": "support", "permissions": ["users.read"]},
        headers=ORIGIN,
    )
    assert crafted.status_code == 403 and "roles.manage" in crafted.text
    by_htmx = await client.post("/roles", data={"name": "support"}, headers=htmx(token))
    assert by_htmx.status_code == 403 and by_htmx.headers["HX-Retarget"] == "#toasts"
    roles = await client.get("/api/v1/roles/support", headers=directory.owner.headers)
    assert roles.status_code == 404


async def test_changes_need_the_csrf_token(client: httpx.AsyncClient, admin: Account) -> None:
    token = await sign_in(client, "ada")
    form = {"name": "support", "permissions": ["users.read"]}
    missing = await client.post("/roles", data=form, headers=ORIGIN)
    assert missing.status_code == 403 and "reload the page" in missing.text
    forged = await client.post("/roles", data={**form, "csrf_token": "x" * 43}, headers=ORIGIN)
    assert forged.status_code == 403
    assert (await client.get("/api/v1/roles/support", headers=admin.headers)).status_code == 404

    made = await client.post("/roles", data={**form, "csrf_token": token}, headers=ORIGIN)
    assert made.status_code == 303 and made.headers["location"] == "/roles?role=support"
    no_token_delete = await client.post("/roles/support/delete", headers=ORIGIN)
    assert no_token_delete.status_code == 403
    assert (await client.get("/api/v1/roles/support", headers=admin.headers)).status_code == 200


async def test_built_in_roles_cannot_be_edited_or_deleted(
    client: httpx.AsyncClient, admin: Account
) -> None:
    token = await sign_in(client, "ada")
    # The page offers no form for a built-in role, even when asked for one.
    page = await client.get("/roles?role=user&edit=1")
    assert page.status_code == 200 and 'action="/roles/user/edit"' not in page.text
    assert "Built-in roles are read-only" in page.text

    crafted = await client.post(
        "/roles/user/edit",
        data={"csrf_token": token, "name": "user", "permissions": ["users.read"]},
        headers=ORIGIN,
    )
    assert crafted.status_code == 409
    assert "user is a built-in role and cannot be changed" in crafted.text
    by_htmx = await client.post(
        "/roles/user/edit", data={"name": "user", "permissions": []}, headers=htmx(token)
    )
    assert by_htmx.status_code == 409 and "cannot be changed" in by_htmx.text
    deleted = await client.post("/roles/guest/delete", data={"csrf_token": token}, headers=ORIGIN)
    assert deleted.status_code == 409 and "cannot be deleted" in deleted.text
    role = (await client.get("/api/v1/roles/user", headers=admin.headers)).json()
    assert role["permissions"] == ["profile.edit"]


async def test_form_errors_beside_fields_and_grants_beyond_ones_own(
    client: httpx.AsyncClient, admin: Account, directory: Directory
) -> None:
    token = await sign_in(client, "ada")
    bad = await client.post(
        "/roles",
        data={"name": "Bad Name", "description": "typed", "permissions": ["audit.read"]},
        headers=htmx(token),
    )
    assert bad.status_code == 422
    assert 'id="error-name">must be 2 to 64 lowercase' in bad.text
    assert 'value="typed"' in bad.text and 'value="audit.read" checked' in bad.text
    duplicate = await client.post("/roles", data={"name": "admin"}, headers=htmx(token))
    assert duplicate.status_code == 422
    assert 'id="error-name">a role named admin already exists' in duplicate.text
    # owners.manage is shown disabled to an admin; sent anyway, the action refuses.
    form = await client.get("/roles?new=1")
    owners_manage = form.text.split('value="owners.manage"')[1].split(">")[0]
    assert "disabled" in owners_manage
    assert form.text.count("you do not hold it") == 1
    beyond = await client.post(
        "/roles", data={"name": "boss", "permissions": ["owners.manage"]}, headers=htmx(token)
    )
    assert beyond.status_code == 403 and "owners.manage" in beyond.text

    # In use: the delete is refused in the panel, as an alert, and with a toast.
    made = await client.post(
        "/roles", data={"name": "support", "permissions": ["users.read"]}, headers=htmx(token)
    )
    assert made.status_code == 200 and "The role support was created." in made.text
    assert made.headers["HX-Push-Url"] == "/roles?role=support"
    bob = await directory.create("bob", roles=["support"])
    refused = await client.post("/roles/support/delete", headers=htmx(token))
    assert refused.status_code == 409
    assert 'id="role-refusal"' in refused.text and "1 user(s) hold the role support" in refused.text
    await client.put(
        f"/api/v1/users/{bob['id']}/roles", json={"roles": ["user"]}, headers=admin.headers
    )
    deleted = await client.post("/roles/support/delete", headers=htmx(token))
    assert deleted.status_code == 200 and "The role support was deleted." in deleted.text
    assert deleted.headers["HX-Push-Url"] == "/roles"


async def test_crafted_edit_of_a_built_in_role_with_bad_input_is_refused(
    client: httpx.AsyncClient, admin: Account
) -> None:
    token = await sign_in(client, "ada")
    crafted = await client.post(
        "/roles/user/edit", data={"csrf_token": token, "name": "Not Valid"}, headers=ORIGIN
    )
    assert crafted.status_code == 422 and "<h1>Check the form</h1>" in crafted.text


async def test_the_display_name_identity_providers_see_is_set_in_the_form(
    client: httpx.AsyncClient, admin: Account
) -> None:
    token = await sign_in(client, "ada")
    made = await client.post(
        "/roles",
        data={"name": "helpdesk", "display_name": "Help Desk", "permissions": ["users.read"]},
        headers=htmx(token),
    )
    assert made.status_code == 200, made.text
    assert "Known to identity providers (SCIM) as <strong>Help Desk</strong>" in made.text
    role = (await client.get("/api/v1/roles/helpdesk", headers=admin.headers)).json()
    assert role["display_name"] == "Help Desk"
    edit = await client.get("/roles?role=helpdesk&edit=1")
    assert 'name="display_name" type="text" value="Help Desk"' in edit.text
    # Another role may not take it, in any case: the error stands beside the field.
    taken = await client.post(
        "/roles", data={"name": "desk", "display_name": "HELP DESK"}, headers=htmx(token)
    )
    assert taken.status_code == 422
    assert 'id="error-display_name">the role helpdesk is already displayed as' in taken.text
    # Left blank, the display name is the name, and follows a rename.
    plain = await client.post("/roles", data={"name": "desk"}, headers=htmx(token))
    assert plain.status_code == 200 and "Known to identity providers" not in plain.text
    renamed = await client.post(
        "/roles/desk/edit", data={"name": "front-desk"}, headers=htmx(token)
    )
    assert renamed.status_code == 200, renamed.text
    front = (await client.get("/api/v1/roles/front-desk", headers=admin.headers)).json()
    assert front["display_name"] == "front-desk"


async def test_clearing_the_display_name_makes_it_the_name_again(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """The hint says "Blank: the same as the name": a display name cleared in the form is
    reset to the name (it was left as it was), and follows a rename from then on."""
    token = await sign_in(client, "ada")
    made = await client.post(
        "/roles", data={"name": "helpdesk", "display_name": "Help Desk"}, headers=htmx(token)
    )
    assert made.status_code == 200, made.text
    cleared = await client.post(
        "/roles/helpdesk/edit",
        data={"name": "helpdesk", "display_name": ""},
        headers=htmx(token),
    )
    assert cleared.status_code == 200, cleared.text
    assert "Known to identity providers" not in cleared.text
    role = (await client.get("/api/v1/roles/helpdesk", headers=admin.headers)).json()
    assert role["display_name"] == "helpdesk"
    renamed = await client.post(
        "/roles/helpdesk/edit", data={"name": "service-desk"}, headers=htmx(token)
    )
    assert renamed.status_code == 200, renamed.text
    role = (await client.get("/api/v1/roles/service-desk", headers=admin.headers)).json()
    assert role["display_name"] == "service-desk"
