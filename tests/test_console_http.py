"""The console over HTTP (in process): sign-in, CSRF, headers, escaping, errors as pages.

What a browser does with these pages is in tests/browser/; here are the answers themselves,
including the ones no honest browser would provoke."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from tests.conftest import Account, Directory, queued_emails

PASSWORD = "a long and unguessable passphrase"
ORIGIN = {"origin": "http://userdesk.test"}


async def sign_in(client: httpx.AsyncClient, login: str, password: str = PASSWORD) -> str:
    """Sign in through the console's form; return the page's CSRF token."""
    answer = await client.post(
        "/login", data={"login": login, "password": password, "next": "/users"}, headers=ORIGIN
    )
    assert answer.status_code == 303, answer.text
    page = await client.get(answer.headers["location"], follow_redirects=True)
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, page.text
    return found.group(1)


async def sign_in_to(client: httpx.AsyncClient, login: str, page: str) -> str:
    """Sign in and open `page`; return its CSRF token."""
    answer = await client.post(
        "/login", data={"login": login, "password": PASSWORD, "next": page}, headers=ORIGIN
    )
    assert answer.status_code == 303, answer.text
    opened = await client.get(page)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', opened.text)
    assert opened.status_code == 200 and found, opened.text
    return found.group(1)


@pytest.fixture
async def admin(directory: Directory) -> Account:
    return await directory.account("ada", roles=["admin"], password=PASSWORD)


async def test_pages_need_a_session(client: httpx.AsyncClient) -> None:
    answer = await client.get("/users?tab=active&q=x")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fusers%3Ftab%3Dactive%26q%3Dx"
    htmx = await client.get("/users", headers={"HX-Request": "true"})
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"].startswith("/login?next=")


async def test_sign_in_page_and_its_refusals(client: httpx.AsyncClient, admin: Account) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and page.headers["x-frame-options"] == "DENY"

    wrong = await client.post("/login", data={"login": "ada", "password": "nope"}, headers=ORIGIN)
    assert wrong.status_code == 401 and "Wrong username, email or password." in wrong.text
    assert "userdesk_session" not in wrong.headers.get("set-cookie", "")

    cross = await client.post(
        "/login",
        data={"login": "ada", "password": PASSWORD},
        headers={"origin": "https://evil.example"},
    )
    assert cross.status_code == 403 and "set-cookie" not in cross.headers

    empty = await client.post("/login", data={}, headers=ORIGIN)
    assert empty.status_code == 422 and "Enter your username or email" in empty.text

    # Only paths of this site are followed after signing in.
    for evil in (
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "/\t/evil.example",  # browsers drop tabs and line breaks: "//evil.example"
        "/\n/evil.example",
        "/%09/../\\evil.example",
    ):
        answer = await client.post(
            "/login", data={"login": "ada", "password": PASSWORD, "next": evil}, headers=ORIGIN
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/"


async def test_htmx_sign_in_answers_with_the_fragment(
    client: httpx.AsyncClient, admin: Account
) -> None:
    wrong = await client.post(
        "/login",
        data={"login": "ada", "password": "nope"},
        headers={**ORIGIN, "HX-Request": "true"},
    )
    assert wrong.status_code == 401
    assert "<html" not in wrong.text and 'role="alert"' in wrong.text
    right = await client.post(
        "/login",
        data={"login": "ada", "password": PASSWORD, "next": "/users?tab=pending"},
        headers={**ORIGIN, "HX-Request": "true"},
    )
    assert right.status_code == 204 and right.headers["HX-Redirect"] == "/users?tab=pending"
    tabbed = await client.post(
        "/login",
        data={"login": "ada", "password": PASSWORD, "next": "/\t/evil.example"},
        headers={**ORIGIN, "HX-Request": "true"},
    )
    assert tabbed.headers["HX-Redirect"] == "/"


async def test_changes_need_the_csrf_token(
    client: httpx.AsyncClient, admin: Account, directory: Directory
) -> None:
    bob = await directory.create("bob")
    token = await sign_in(client, "ada")
    path = f"/users/{bob['id']}/deactivate"

    missing = await client.post(path, headers=ORIGIN)
    assert missing.status_code == 403 and "reload the page" in missing.text
    forged = await client.post(path, headers={**ORIGIN, "X-CSRF-Token": "x" * 43})
    assert forged.status_code == 403
    cross = await client.post(
        path, headers={"origin": "https://evil.example", "X-CSRF-Token": token}
    )
    assert cross.status_code == 403
    user = await client.get(f"/api/v1/users/{bob['id']}", headers=admin.headers)
    assert user.json()["status"] == "pending", "nothing changed"

    by_form = await client.post(path, data={"csrf_token": token}, headers=ORIGIN)
    assert by_form.status_code == 303
    user = await client.get(f"/api/v1/users/{bob['id']}", headers=admin.headers)
    assert user.json()["status"] == "deactivated"


async def test_action_answers_refresh_list_panel_and_toast(
    client: httpx.AsyncClient, admin: Account, directory: Directory
) -> None:
    bob = await directory.create("bob", name="Bob Builder")
    token = await sign_in(client, "ada")
    answer = await client.post(
        f"/users/{bob['id']}/make-admin",
        headers={
            **ORIGIN,
            "X-CSRF-Token": token,
            "HX-Request": "true",
            "HX-Current-URL": f"http://userdesk.test/users?q=bob&user={bob['id']}",
        },
    )
    assert answer.status_code == 200, answer.text
    assert 'id="user-tabs"' in answer.text and 'hx-swap-oob="true"' in answer.text
    assert 'id="panel" hx-swap-oob="innerHTML"' in answer.text
    assert "Bob Builder (@bob) is now an admin." in answer.text
    # The list is the one the admin was looking at: bob's search, one row.
    assert answer.text.count("data-row-link") == 1
    roles = (await client.get(f"/api/v1/users/{bob['id']}", headers=admin.headers)).json()
    assert roles["roles"] == ["admin", "user"]


async def test_refusals_are_pages_or_toasts_never_500(
    client: httpx.AsyncClient, admin: Account, directory: Directory
) -> None:
    token = await sign_in(client, "ada")
    owner_id = (await client.get("/api/v1/users?q=olive", headers=admin.headers)).json()["items"][
        0
    ]["id"]
    # An admin cannot act on an owner: the action says why, as a toast for htmx.
    refused = await client.post(
        f"/users/{owner_id}/deactivate",
        headers={**ORIGIN, "X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert refused.status_code == 403
    assert refused.headers["HX-Retarget"] == "#toasts"
    assert "owners.manage" in refused.text

    unknown = await client.post("/users/nobody/delete", headers={**ORIGIN, "X-CSRF-Token": token})
    assert unknown.status_code == 404 and "<h1>Not found</h1>" in unknown.text
    bad_action = await client.post(
        f"/users/{owner_id}/promote-to-god", headers={**ORIGIN, "X-CSRF-Token": token}
    )
    assert bad_action.status_code == 404

    bad_sort = await client.get("/users?sort=password")
    assert bad_sort.status_code == 422 and "must be one of" in bad_sort.text
    bad_cursor = await client.get("/users?after=not-a-cursor")
    assert bad_cursor.status_code == 422
    long_query = await client.get("/users", params={"q": "x" * 5000})
    assert long_query.status_code == 200

    plain = await directory.account("pat", password=PASSWORD)
    assert plain
    client.cookies.clear()
    await client.post("/login", data={"login": "pat", "password": PASSWORD}, headers=ORIGIN)
    forbidden = await client.get("/users")
    assert forbidden.status_code == 403 and "users.read" in forbidden.text


async def test_everything_users_typed_is_escaped(
    client: httpx.AsyncClient, admin: Account, directory: Directory
) -> None:
    evil = await directory.create(
        "mallory", name='<script>alert("x")</script><img src=x onerror=alert(1)>'
    )
    await sign_in(client, "ada")
    page = await client.get(f"/users?user={evil['id']}&q=%3Cscript%3E")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text


async def test_forced_password_change_comes_first(
    client: httpx.AsyncClient, admin: Account, directory: Directory
) -> None:
    await directory.create("pam", password=PASSWORD, require_password_change=True)
    answer = await client.post(
        "/login", data={"login": "pam", "password": PASSWORD, "next": "/users"}, headers=ORIGIN
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/account/password"
    elsewhere = await client.get("/users")
    assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/account/password"
    page = await client.get("/account/password")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert page.status_code == 200 and token

    feedback = await client.post(
        "/account/password/check",
        data={"new_password": "pam"},
        headers={**ORIGIN, "X-CSRF-Token": token.group(1)},
    )
    assert 'class="unmet"' in feedback.text

    wrong = await client.post(
        "/account/password",
        data={
            "csrf_token": token.group(1),
            "current_password": "not it",
            "new_password": "an entirely new passphrase",
        },
        headers=ORIGIN,
    )
    assert wrong.status_code == 422 and "is not your password" in wrong.text
    changed = await client.post(
        "/account/password",
        data={
            "csrf_token": token.group(1),
            "current_password": PASSWORD,
            "new_password": "an entirely new passphrase",
        },
        headers=ORIGIN,
    )
    assert changed.status_code == 303 and changed.headers["location"] == "/"


async def test_sign_out_ends_the_session(client: httpx.AsyncClient, admin: Account) -> None:
    token = await sign_in(client, "ada")
    out = await client.post("/logout", data={"csrf_token": token}, headers=ORIGIN)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert (await client.get("/users")).status_code == 303


async def test_console_assets_are_served(client: httpx.AsyncClient) -> None:
    """htmx comes from the set-up command's npm install; without it the console is degraded,
    so its absence fails here rather than passing quietly."""
    htmx = await client.get("/static/htmx/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text[:2000]
    for asset in ("/static/console.js", "/static/console.css", "/static/favicon.svg"):
        assert (await client.get(asset)).status_code == 200, asset


async def test_verification_link_request_answers_alike(
    client: httpx.AsyncClient, directory: Directory, database: Any
) -> None:
    await directory.create("vic", password=PASSWORD)
    before = len(await queued_emails(database, "email_verification"))
    answers = []
    for email in ("vic@example.com", "nobody@example.com"):
        answer = await client.post("/verify-email/request", data={"email": email}, headers=ORIGIN)
        assert answer.status_code == 200
        answers.append(answer.text)
    assert answers[0] == answers[1], "the answer does not tell whether the address exists"
    sent = (await queued_emails(database, "email_verification"))[before:]
    assert [e["to"] for e in sent] == ["vic@example.com"]
    bad = await client.post("/verify-email/request", data={"email": "nope"}, headers=ORIGIN)
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    cross = await client.post(
        "/verify-email/request",
        data={"email": "vic@example.com"},
        headers={"origin": "https://evil.example"},
    )
    assert cross.status_code == 403


async def test_make_and_remove_admin_keep_the_other_roles(
    client: httpx.AsyncClient, admin: Account, directory: Directory, database: Any
) -> None:
    bob = await directory.create("bob", roles=["user", "user-manager"])
    token = await sign_in(client, "ada")
    headers = {**ORIGIN, "X-CSRF-Token": token}
    await client.post(f"/users/{bob['id']}/make-admin", headers=headers)
    user = (await client.get(f"/api/v1/users/{bob['id']}", headers=admin.headers)).json()
    assert user["roles"] == ["admin", "user", "user-manager"]
    await client.post(f"/users/{bob['id']}/remove-admin", headers=headers)
    user = (await client.get(f"/api/v1/users/{bob['id']}", headers=admin.headers)).json()
    assert user["roles"] == ["user", "user-manager"]

    # Nobody is left without a role, whoever calls the action.
    from userdesk.actions.context import Actor
    from userdesk.actions.users import revoke_role, set_roles
    from userdesk.errors import InvalidInput

    async with database.transaction() as session:
        with pytest.raises(InvalidInput):
            await set_roles(session, actor=Actor.system(), user_id=bob["id"], roles=[])
    cy = await directory.create("cy", roles=["guest"])
    async with database.transaction() as session:
        left = await revoke_role(session, actor=Actor.system(), user_id=cy["id"], role="guest")
        assert [r.name for r in left.roles] == ["user"]


async def test_edit_user_keeps_a_change_made_meanwhile(
    client: httpx.AsyncClient, admin: Account, directory: Directory, owner: Account
) -> None:
    bob = await directory.create("bob", name="Bob Builder", nickname="Bobby")
    token = await sign_in(client, "ada")
    panel = await client.get(
        f"/users?user={bob['id']}&edit=1", headers={"HX-Request": "true", "HX-Target": "panel"}
    )
    shown = re.search(r'name="shown" value="([^"]+)"', panel.text)
    assert shown, panel.text
    # Someone else renames the nickname and adds a role while the panel is open.
    await client.patch(f"/api/v1/users/{bob['id']}", json={"nickname": "B."}, headers=owner.headers)
    await client.put(
        f"/api/v1/users/{bob['id']}/roles",
        json={"roles": ["user", "guest"]},
        headers=owner.headers,
    )
    saved = await client.post(
        f"/users/{bob['id']}/edit",
        data={
            "csrf_token": token,
            "shown": html.unescape(shown.group(1)),
            "name": "Bob the Builder",
            "username": "bob",
            "email": "bob@example.com",
            "nickname": "Bobby",
            "roles": ["user"],
            "password_mode": "keep",
            "avatar_mode": "keep",
        },
        headers={**ORIGIN, "HX-Request": "true"},
    )
    assert saved.status_code == 200, saved.text
    user = (await client.get(f"/api/v1/users/{bob['id']}", headers=admin.headers)).json()
    assert user["name"] == "Bob the Builder"
    assert user["nickname"] == "B." and user["roles"] == ["guest", "user"]


async def test_a_creator_who_cannot_list_users_stays_on_the_form(
    client: httpx.AsyncClient, directory: Directory, owner: Account
) -> None:
    role = await client.post(
        "/api/v1/roles",
        json={
            "name": "recruiter",
            "description": "Adds people",
            "permissions": ["users.create", "profile.edit"],
        },
        headers=owner.headers,
    )
    assert role.status_code == 201, role.text
    await directory.account("rita", roles=["recruiter"], password=PASSWORD)
    token = await sign_in_to(client, "rita", "/users/new")
    created = await client.post(
        "/users/new",
        data={
            "csrf_token": token,
            "name": "Newt",
            "username": "newt",
            "email": "newt@example.com",
            "roles": ["user"],
        },
        headers=ORIGIN,
    )
    assert created.status_code == 303
    assert created.headers["location"] == "/users/new?created=newt"
    page = await client.get(created.headers["location"])
    assert page.status_code == 200 and "The user @newt was created" in page.text
