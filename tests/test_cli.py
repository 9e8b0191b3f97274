"""The `userdesk` command, run as a real process against SQLite and PostgreSQL.

Each call starts a Python process (about a second), so the tests group related steps
instead of spending one process on each assertion.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import POSTGRES_URL
from tests.processes import (
    Cli,
    Server,
    StartServer,
    bearer,
    stop,
)
from userdesk.actions.context import Actor
from userdesk.actions.inputs import UserCreate
from userdesk.actions.users import create_user, deactivate_user
from userdesk.db import Database


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    return Cli(database_url, tmp_path)


# --- migrate, owners, tokens -------------------------------------------------------------


async def test_migrate_owner_and_token_lifecycle(cli: Cli, client: httpx.AsyncClient) -> None:
    assert "up to date" in cli("migrate").ok().stdout
    assert "up to date" in cli("migrate").ok().stdout

    cli.create_owner("olive")
    owner = cli("users", "show", "olive").ok().json()
    assert owner["status"] == "active"
    assert owner["roles"] == ["owner"]
    assert owner["has_password"] is True
    assert owner["type"] == "human"

    generated = cli("create-owner", "--username", "oscar", "--email", "oscar@example.com").ok()
    password_lines = [
        line for line in generated.stdout.splitlines() if line.startswith("password:")
    ]
    assert len(password_lines) == 1, generated.stdout
    password = password_lines[0].removeprefix("password:").strip()
    assert len(password) >= 12
    assert generated.stdout.count(password) == 1
    assert password not in generated.stderr
    second = cli("users", "show", "oscar").ok().json()
    assert (second["status"], second["roles"], second["has_password"]) == (
        "active",
        ["owner"],
        True,
    )

    token_id, secret = cli.token("olive", name="deploy")
    seats = await client.get("/api/v1/seats", headers=bearer(secret))
    assert seats.status_code == 200, seats.text
    assert seats.json()["used"] == 2
    users = await client.get("/api/v1/users", headers=bearer(secret))
    assert {u["username"] for u in users.json()["items"]} == {"olive", "oscar"}

    table = cli("tokens", "list", "--user", "olive").ok().stdout
    assert "deploy" in table and secret not in table
    listed = cli("tokens", "list", "--user", "olive", "--json").ok()
    assert secret not in listed.stdout
    [token] = listed.json()
    assert token["id"] == token_id and token["name"] == "deploy"
    assert token["revoked_at"] is None
    assert secret.startswith(token["hint"]) and len(token["hint"]) < len(secret) // 2

    assert token_id in cli("tokens", "revoke", token_id).ok().stdout
    refused = await client.get("/api/v1/seats", headers=bearer(secret))
    assert refused.status_code == 401, refused.text
    cli("tokens", "revoke", "no-such-token").fails(4, "no-such-token")


def test_create_owner_with_an_empty_password_on_stdin_creates_nobody(cli: Cli) -> None:
    """An empty stdin must not silently fall back to a generated password nobody sees."""
    result = cli(
        "create-owner",
        "--username",
        "olive",
        "--email",
        "olive@example.com",
        "--password-stdin",
        input="",
    )
    result.fails(3, "password")
    cli("users", "show", "olive").fails(4)


async def test_credentials_from_the_command_line(
    cli: Cli, client: httpx.AsyncClient, database: Database
) -> None:
    """Reset a password (typed or random and emailed), unlock, restricted tokens, policy."""
    cli.create_owner()
    cli("users", "reset-password", "olive", "--password-stdin", input="qwerty\n").fails(
        3, "password", "common"
    )
    cli(
        "users",
        "reset-password",
        "olive",
        "--password-stdin",
        "--no-require-change",
        input="a brand new passphrase\n",
    ).ok()
    login = {"login": "olive", "password": "a brand new passphrase"}
    signed_in = await client.post("/api/v1/auth/login", json=login)
    assert signed_in.status_code == 200
    assert signed_in.json()["user"]["require_password_change"] is False

    cli("users", "reset-password", "olive").ok()
    async with database.reader() as session:
        [payload] = (
            (
                await session.execute(
                    text("SELECT payload FROM outbox WHERE kind = 'email.random_password'")
                )
            )
            .scalars()
            .all()
        )
    payload = payload if isinstance(payload, dict) else json.loads(payload)
    assert payload["to"] == "olive@example.com"
    assert payload["secrets"]["password"].startswith("sealed:v1:")
    assert (await client.get("/api/v1/me")).status_code == 401  # her session ended

    for _ in range(3):
        await client.post("/api/v1/auth/login", json={"login": "olive", "password": "wrong"})
    assert (await client.post("/api/v1/auth/login", json=login)).status_code == 429
    cli("users", "unlock", "olive").ok()
    cli("users", "unlock", "nobody").fails(4, "nobody")

    cli("settings", "set", "password_require_digit", "true").ok()
    cli("settings", "set", "two_factor_required_roles", "admin, owner").ok()
    got = cli("settings", "get").ok().json()
    assert got["password_require_digit"] is True
    assert got["two_factor_required_roles"] == ["admin", "owner"]
    cli("settings", "set", "two_factor_required_roles", "none").ok()
    cli("settings", "set", "password_min_length", "3").fails(3, "password_min_length")

    minted = cli(
        "tokens", "create", "--user", "olive", "--name", "reader", "--permission", "users.read"
    ).ok()
    secret = minted.stdout.strip().splitlines()[-1]
    reader = bearer(secret)
    assert (await client.get("/api/v1/users", headers=reader)).status_code == 200
    assert (await client.get("/api/v1/settings", headers=reader)).status_code == 403
    cli("tokens", "create", "--user", "olive", "--name", "x", "--permission", "nope").fails(
        3, "permission"
    )


# --- users and settings ------------------------------------------------------------------


def test_users_follow_the_same_rules_as_the_api(cli: Cli) -> None:
    cli.create_owner("olive")

    created = cli(
        "users",
        "create",
        "--username",
        "alice",
        "--email",
        "alice@example.com",
        "--name",
        "Alice Liddell",
    ).ok()
    assert "created alice" in created.stdout and "status pending" in created.stdout
    cli(
        "users", "create", "--username", "ALICE", "--email", "other@example.com", "--name", "Other"
    ).fails(6, "ALICE", "taken")
    cli("users", "create", "--username", "eve", "--email", "not-an-email", "--name", "Eve").fails(
        3, "email"
    )

    # Owner and alice take the two seats.
    assert cli("settings", "set", "seat_limit", "2").ok().json()["seat_limit"] == 2
    assert (
        cli("settings", "get").ok().json().items()
        >= {
            "name": "My Workspace",
            "seat_limit": 2,
            "session_idle_minutes": 480,
            "session_max_hours": 168,
            "password_min_length": 12,
            "two_factor_required_roles": [],
        }.items()
    )
    assert cli("settings", "get", "seat_limit").ok().stdout == "2\n"
    cli(
        "users", "create", "--username", "bob", "--email", "bob@example.com", "--name", "Bob"
    ).fails(6, "seats")
    cli("settings", "set", "seat_limit", "abc").fails(3, "seat_limit")
    cli("settings", "get", "colour").fails(3, "colour")

    cli("users", "deactivate", "olive").fails(6, "owner")
    assert cli("users", "deactivate", "alice").ok().stdout == "deactivated alice\n"
    assert cli("users", "activate", "alice").ok().stdout == "activated alice\n"
    alice = cli("users", "show", "alice").ok().json()
    assert (alice["status"], alice["roles"], alice["has_password"]) == ("pending", ["user"], False)

    assert cli("users", "delete", alice["id"], "--yes").ok().stdout.startswith("deleted ")
    cli("users", "show", "alice").fails(4, "alice")
    everyone = cli("users", "list", "--json").ok().json()
    assert [u["username"] for u in everyone["items"]] == ["olive"]
    assert everyone["counts"]["all"] == 1


async def test_users_list_searches_filters_and_sorts(cli: Cli, database: Database) -> None:
    system = Actor.system("test")
    people = [
        ("olive", "Olive Owner", "zz-olive@example.com", ["owner"]),
        ("alice", "Alice Liddell", "b-alice@example.com", ["admin"]),
        ("bob", "Bob Builder", "a-bob@example.com", None),
        ("carol", "Carol Danvers", "c-carol@example.com", None),
    ]
    async with database.transaction() as session:
        for username, name, email, roles in people:
            await create_user(
                session,
                actor=system,
                data=UserCreate(username=username, name=name, email=email, roles=roles),
            )
    async with database.transaction() as session:
        dave = await create_user(
            session,
            actor=system,
            data=UserCreate(username="dave", name="Dave Deactivated", email="d-dave@example.com"),
        )
        dave_id = dave.public_id
    async with database.transaction() as session:
        await deactivate_user(session, actor=system, user_id=dave_id)

    everyone = cli("users", "list", "--json").ok().json()
    # The same shape as GET /api/v1/users.
    assert set(everyone) == {
        "items",
        "counts",
        "counts_estimated",
        "next_cursor",
        "prev_cursor",
        "seats",
    }
    assert [u["username"] for u in everyone["items"]] == ["alice", "bob", "carol", "dave", "olive"]
    assert everyone["counts"] == {"all": 5, "pending": 4, "active": 0, "deactivated": 1}
    assert everyone["next_cursor"] is None

    table = cli("users", "list", "--search", "danv").ok().stdout
    assert "carol" in table and "alice" not in table and "all 1 " in table

    deactivated = cli("users", "list", "--json", "--status", "deactivated").ok().json()
    assert [u["username"] for u in deactivated["items"]] == ["dave"]

    admins = cli("users", "list", "--json", "--role", "admin").ok().json()
    assert [u["username"] for u in admins["items"]] == ["alice"]

    first = cli("users", "list", "--json", "--sort", "-email", "--limit", "3").ok().json()
    assert [u["username"] for u in first["items"]] == ["olive", "dave", "carol"]
    assert first["next_cursor"]
    rest = (
        cli(
            "users",
            "list",
            "--json",
            "--sort",
            "-email",
            "--limit",
            "3",
            "--cursor",
            first["next_cursor"],
        )
        .ok()
        .json()
    )
    assert [u["username"] for u in rest["items"]] == ["alice", "bob"]
    assert rest["next_cursor"] is None


# --- errors that are not about users -----------------------------------------------------


def test_unreachable_database_is_one_line_and_exit_7(tmp_path: Path) -> None:
    unreachable = Cli("postgresql://postgres@127.0.0.1:1/nope", tmp_path)
    line = unreachable("users", "list").fails(7, "database")
    assert "127.0.0.1" in line


def test_database_errors_do_not_show_the_database_password(tmp_path: Path) -> None:
    result = Cli("postgresql://userdesk:hunter2-secret@127.0.0.1:1/nope", tmp_path)("migrate")
    line = result.fails(7, "database")
    assert "hunter2-secret" not in result.stdout + result.stderr, line


@pytest.mark.parametrize("url", ["not a url at all", "mysql://root@127.0.0.1/userdesk"])
def test_unusable_database_url_is_one_line_and_exit_7(tmp_path: Path, url: str) -> None:
    Cli(url, tmp_path)("migrate").fails(7, "database")


def test_invalid_configuration_is_one_line(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path}/x.db", tmp_path)
    cli.env["USERDESK_ARGON2_TIME_COST"] = "many"
    cli("migrate").fails(7, "USERDESK_ARGON2_TIME_COST")


# --- serve -------------------------------------------------------------------------------


def exercise_api(server: Server, secret: str) -> None:
    with httpx.Client(base_url=server.url, headers=bearer(secret), timeout=10) as http:
        seats = http.get("/api/v1/seats")
        assert seats.status_code == 200, seats.text
        assert seats.json() == {"used": 1, "limit": None, "available": None}
        created = http.post(
            "/api/v1/users",
            json={"name": "Amy Pond", "username": "amy", "email": "amy@example.com"},
        )
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "pending"
        users = http.get("/api/v1/users")
        assert users.status_code == 200, users.text
        assert [u["username"] for u in users.json()["items"]] == ["admin", "amy"]
        assert http.get("/api/v1/seats").json()["used"] == 2
        assert http.get("/api/v1/users", headers=bearer("udt_wrong")).status_code == 401


def first_start_password(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if "password:" in line]
    assert len(lines) == 1, output
    return lines[0].removeprefix("password:").strip()


def test_serve_on_the_default_sqlite_database(tmp_path: Path, start_server: StartServer) -> None:
    workdir = tmp_path / "site"
    workdir.mkdir()
    cli = Cli(None, workdir)
    assert "USERDESK_DATABASE_URL" not in cli.env

    server = start_server(cli)
    assert server.process.poll() is None
    assert (workdir / "var" / "userdesk.db").is_file()
    # Read while the server runs: the one-time password must not wait in a buffer.
    output = server.output()
    assert "username: admin" in output, server.describe()
    password = first_start_password(output)
    assert len(password) >= 12
    assert password not in server.stderr.read_text(errors="replace")
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "database": "sqlite"}

    _, secret = cli.token("admin")
    exercise_api(server, secret)
    stop(server)
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status reports it.
    assert server.process.returncode in (0, -signal.SIGTERM), server.describe()
    assert "Application shutdown complete" in server.stderr.read_text(), server.describe()

    again = start_server(cli)
    output = again.output()
    assert "password" not in output and "First start" not in output, again.describe()
    assert password not in output
    with httpx.Client(base_url=again.url, headers=bearer(secret), timeout=10) as http:
        users = http.get("/api/v1/users", params={"role": "owner"})
        assert users.status_code == 200, users.text
        assert [u["username"] for u in users.json()["items"]] == ["admin"]
        # With no SMTP server, the in-process worker captures email and logs its links.
        asked = http.post("/api/v1/auth/password/forgot", json={"login": "admin"})
        assert asked.status_code == 202
        deadline = time.monotonic() + 15
        while "reset-password#token=udl_" not in again.stderr.read_text(errors="replace"):
            assert time.monotonic() < deadline, again.describe()
            time.sleep(0.2)
        [mail] = http.get("/api/v1/mail").json()["items"]
        assert mail["status"] == "captured" and mail["to"] == "admin@example.com"


@pytest.mark.skipif(not POSTGRES_URL, reason="USERDESK_TEST_POSTGRES_URL is not set")
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_serve_on_postgresql(database_url: str, tmp_path: Path, start_server: StartServer) -> None:
    cli = Cli(database_url, tmp_path)
    server = start_server(cli)
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "database": "postgresql"}
    first_start_password(server.output())
    assert not (tmp_path / "var").exists(), "no SQLite file when PostgreSQL is configured"
    _, secret = cli.token("admin")
    exercise_api(server, secret)


def test_bootstrap_settings_matter_only_on_a_database_without_an_owner(
    tmp_path: Path, start_server: StartServer
) -> None:
    cli = Cli(f"sqlite:///{tmp_path}/boot.db", tmp_path)
    cli.env["USERDESK_BOOTSTRAP_OWNER_EMAIL"] = "admin@localhost"
    cli("serve", "--port", "1").fails(7, "USERDESK_BOOTSTRAP_OWNER_EMAIL")
    assert "admin" not in cli("users", "list", "--json").ok().stdout
    cli.create_owner("olive")
    server = start_server(cli)  # an owner exists: the bad setting is never looked at
    assert "password:" not in server.output()
