"""Two `userdesk serve` processes on one PostgreSQL: what one process changes, the other
enforces at once (nothing that matters is kept in a process's memory)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import postgres_only
from tests.processes import Cli, StartServer, bearer

PASSWORD = "a long enough passphrase"


@postgres_only
def test_deactivation_on_one_server_ends_sessions_and_tokens_on_the_other(
    database_url: str, tmp_path: Path, start_server: StartServer
) -> None:
    cli = Cli(database_url, tmp_path)
    cli.env["USERDESK_COOKIE_SECURE"] = "false"
    cli.create_owner("olive")
    _, owner_token = cli.token("olive")
    first, second = start_server(cli), start_server(cli)
    with (
        httpx.Client(base_url=first.url, timeout=10) as one,
        httpx.Client(base_url=second.url, timeout=10, headers=bearer(owner_token)) as two,
    ):
        created = two.post(
            "/api/v1/users",
            json={
                "name": "Dee",
                "username": "dee",
                "email": "dee@example.com",
                "password": PASSWORD,
            },
        )
        assert created.status_code == 201, created.text
        _, dee_token = cli.token("dee")
        signed_in = one.post("/api/v1/auth/login", json={"login": "dee", "password": PASSWORD})
        assert signed_in.status_code == 200, signed_in.text
        assert one.get("/api/v1/me").status_code == 200
        assert one.get("/api/v1/me", headers=bearer(dee_token)).status_code == 200

        deactivated = two.post(f"/api/v1/users/{created.json()['id']}/deactivate")
        assert deactivated.status_code == 200, deactivated.text

        assert one.get("/api/v1/me").status_code == 401
        assert one.get("/api/v1/me", headers=bearer(dee_token)).status_code == 401


@postgres_only
def test_lockouts_and_password_resets_hold_on_every_server(
    database_url: str, tmp_path: Path, start_server: StartServer
) -> None:
    cli = Cli(database_url, tmp_path)
    cli.env["USERDESK_COOKIE_SECURE"] = "false"
    cli.create_owner("olive")
    _, owner_token = cli.token("olive")
    first, second = start_server(cli), start_server(cli)
    with (
        httpx.Client(base_url=first.url, timeout=10) as one,
        httpx.Client(base_url=second.url, timeout=10) as two,
        httpx.Client(base_url=second.url, timeout=10, headers=bearer(owner_token)) as admin,
    ):
        assert admin.patch("/api/v1/settings", json={"lockout_threshold": 3}).status_code == 200
        created = admin.post(
            "/api/v1/users",
            json={"name": "Lee", "username": "lee", "email": "lee@e.org", "password": PASSWORD},
        )
        user_id = created.json()["id"]
        # Failures spread over both servers add up to one lockout.
        for client in (one, two, one):
            wrong = client.post("/api/v1/auth/login", json={"login": "lee", "password": "nope"})
            assert wrong.status_code == 401
        right = {"login": "lee", "password": PASSWORD}
        assert one.post("/api/v1/auth/login", json=right).status_code == 429
        assert two.post("/api/v1/auth/login", json=right).status_code == 429
        assert admin.post(f"/api/v1/users/{user_id}/unlock").status_code == 200
        assert one.post("/api/v1/auth/login", json=right).status_code == 200
        assert one.get("/api/v1/me").status_code == 200

        # A reset through the second server ends the session held on the first.
        reset = admin.post(f"/api/v1/users/{user_id}/password/reset", json={"mode": "random"})
        assert reset.status_code == 200, reset.text
        assert one.get("/api/v1/me").status_code == 401
