"""The `rocketchat-api` client from PyPI, as existing scripts use it, against a live
`userdesk serve` on SQLite and PostgreSQL: it logs in, manages users, roles and invites,
pages through lists, uploads an avatar, and gets Rocket.Chat's errors as its exceptions."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from rocketchat_API.APIExceptions.RocketExceptions import (
    RocketApiException,
    RocketAuthenticationException,
)
from rocketchat_API.rocketchat import RocketChat

from tests.processes import OWNER_PASSWORD, Cli, StartServer

PASSWORD = "a long enough passphrase"
# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_a_rocketchat_script_runs_unchanged(
    database_url: str, tmp_path: Path, start_server: StartServer
) -> None:
    cli = Cli(database_url, tmp_path)
    cli.create_owner("olive")
    server = start_server(cli)

    with pytest.raises(RocketAuthenticationException):
        RocketChat("olive", "wrong password", server_url=server.url)
    rocket = RocketChat("olive", OWNER_PASSWORD, server_url=server.url)
    me = rocket.me()
    assert me["username"] == "olive" and "owner" in me["roles"]

    created = rocket.users_create(
        email="ann@example.com", name="Ann", password=PASSWORD, username="ann", roles=["user"]
    )
    ann_id = created["user"]["_id"]
    assert rocket.users_info(username="ann")["user"]["_id"] == ann_id
    assert rocket.users_info(user_id=ann_id)["user"]["name"] == "Ann"
    for n in range(7):
        rocket.users_create(
            email=f"u{n}@example.com", name=f"U{n}", password=PASSWORD, username=f"u{n}"
        )
    # The client pages with offset and count until a short page.
    names = [u["username"] for u in rocket.users_list(count=3)]
    assert names == ["ann", "olive", "u0", "u1", "u2", "u3", "u4", "u5", "u6"]
    some = list(rocket.users_list(query='{"username": {"$regex": "^u"}}', count=2, max_count=3))
    assert [u["username"] for u in some] == ["u0", "u1", "u2"]

    updated = rocket.users_update(ann_id, name="Ann Example", statusText="busy")
    assert updated["user"]["name"] == "Ann Example" and updated["user"]["statusText"] == "busy"
    assert rocket.users_set_active_status(ann_id, active_status=False)["user"]["active"] is False
    assert rocket.users_set_active_status(ann_id, active_status=True)["user"]["active"] is True

    # Ann, now an admin, runs her own script with a personal access token.
    assert rocket.roles_add_user_to_role("admin", "ann")["success"] is True
    admins = [u["username"] for u in rocket.roles_get_users_in_role("admin")]
    assert admins == ["ann"]
    ann = RocketChat("ann", PASSWORD, server_url=server.url)
    token = ann.call_api_post("users.generatePersonalAccessToken", tokenName="script")["token"]
    script = RocketChat(auth_token=token, user_id=ann_id, server_url=server.url)
    assert script.me()["username"] == "ann"
    with pytest.raises(RocketApiException) as denied:
        script.users_set_active_status(me["_id"], active_status=False)
    assert denied.value.status_code == 403 and denied.value.error_type == "error-unauthorized"
    with pytest.raises(RocketApiException) as exists:
        script.users_create(email="x@example.com", name="X", password=PASSWORD, username="u1")
    assert exists.value.error_type == "error-field-unavailable"
    assert {r["_id"] for r in script.roles_list()["roles"]} >= {"owner", "admin", "user"}

    # Avatars: a file upload, then the picture as getAvatar's redirect leads to it.
    picture = tmp_path / "me.png"
    picture.write_bytes(PNG)
    assert script.users_set_avatar(str(picture))["success"] is True
    shown = script.session.get(
        f"{server.url}/api/v1/users.getAvatar?username=ann", headers=script.headers
    )
    assert shown.status_code == 200 and shown.content.startswith(b"\x89PNG")
    assert script.users_reset_avatar(username="ann")["success"] is True

    # Invites: a link, registration through it, its removal.
    invite = rocket.find_or_create_invite(rid="GENERAL", days=1, max_uses=5)
    assert rocket.validate_invite_token(invite["inviteToken"])["valid"] is True
    assert [i["_id"] for i in rocket.list_invites()] == [invite["_id"]]
    registered = rocket.users_register(
        email="newbie@example.com",
        name="New Bie",
        password=PASSWORD,
        username="newbie",
        secretURL=invite["url"],
    )
    assert registered["user"]["username"] == "newbie"
    assert rocket.remove_invite(invite["_id"]) is True
    assert rocket.validate_invite_token(invite["inviteToken"])["valid"] is False

    assert rocket.users_delete(ann_id)["success"] is True
    with pytest.raises(RocketApiException) as gone:
        rocket.users_info(user_id=ann_id)
    assert gone.value.status_code == 400
    # Ann's token died with her.
    with pytest.raises(RocketApiException):
        script.me()
    assert rocket.logout()["status"] == "success"
    with pytest.raises(RocketApiException):
        rocket.me()
    assert server.process.poll() is None
    assert "Traceback" not in server.output() + server.stderr.read_text()
