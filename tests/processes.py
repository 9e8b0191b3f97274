"""Run userdesk as real processes: the CLI, and `userdesk serve` on a free port."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

OWNER_PASSWORD = "correct horse battery staple"
# Cheap hashing keeps each process start fast; the CLI reads these like any USERDESK_* setting.
FAST_HASHING = {
    "USERDESK_ARGON2_TIME_COST": "1",
    "USERDESK_ARGON2_MEMORY_KIB": "8",
    "USERDESK_ARGON2_PARALLELISM": "1",
}
PROCESS_TIMEOUT = 60
SERVER_START_TIMEOUT = 30


def _console_script() -> str | None:
    beside_python = Path(sys.executable).parent / "userdesk"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("userdesk")


USERDESK = _console_script()


@dataclass
class Result:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def ok(self) -> Result:
        assert self.code == 0, f"userdesk {' '.join(self.args)} exited {self.code}:\n{self}"
        self.no_traceback()
        return self

    def fails(self, code: int, *words: str) -> str:
        """Assert the command failed with `code` and one `error:` line naming `words`."""
        assert self.code == code, f"expected exit {code}, got {self.code}:\n{self}"
        self.no_traceback()
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr:\n{self}"
        assert lines[0].startswith("error: "), self.stderr
        for word in words:
            assert word.lower() in lines[0].lower(), f"{word!r} not in {lines[0]!r}"
        return lines[0]

    def no_traceback(self) -> None:
        assert "Traceback" not in self.stderr + self.stdout, str(self)

    def __str__(self) -> str:
        return f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def base_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERDESK_")}
    env.update(FAST_HASHING)
    env.update(extra)
    return env


class Cli:
    """Runs `userdesk ...` with one database URL (or the default one, in `cwd`)."""

    def __init__(self, database_url: str | None, cwd: Path) -> None:
        if USERDESK is None:
            pytest.fail("the userdesk console script is not installed next to this Python")
        extra = {"USERDESK_DATABASE_URL": database_url} if database_url else {}
        self.env = base_environment(**extra)
        self.cwd = cwd

    def __call__(self, *args: str, input: str | None = None) -> Result:
        assert USERDESK is not None
        done = subprocess.run(
            [USERDESK, *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=PROCESS_TIMEOUT,
        )
        return Result(args, done.returncode, done.stdout, done.stderr)

    def create_owner(self, username: str = "olive") -> None:
        created = self(
            "create-owner",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
            "--password-stdin",
            input=OWNER_PASSWORD + "\n",
        ).ok()
        assert username in created.stdout and OWNER_PASSWORD not in created.stdout

    def token(self, username: str, name: str = "t") -> tuple[str, str]:
        """Mint a token; return (its id as the CLI announced it, the secret)."""
        result = self("tokens", "create", "--user", username, "--name", name).ok()
        lines = result.stdout.rstrip("\n").splitlines()
        secret = lines[-1]
        assert secret and secret == secret.strip() and " " not in secret, result.stdout
        assert result.stdout.count(secret) == 1, "the token is printed exactly once"
        announced = re.search(r"created token (\S+) ", lines[0])
        assert announced, result.stdout
        return announced.group(1), secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")

    def describe(self) -> str:
        return f"--- stdout\n{self.output()}--- stderr\n{self.stderr.read_text(errors='replace')}"


StartServer = Callable[[Cli], Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start `userdesk serve` and wait for /healthz; every server is stopped at the end."""
    started: list[Server] = []

    def start(cli: Cli) -> Server:
        assert USERDESK is not None
        port = free_port()
        n = len(started)
        stdout, stderr = tmp_path / f"serve{n}.out", tmp_path / f"serve{n}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [USERDESK, "serve", "--port", str(port)],
                cwd=cli.cwd,
                # Links in emails point at this server unless the test chose an address.
                env={"USERDESK_PUBLIC_URL": f"http://127.0.0.1:{port}", **cli.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        server = Server(process, f"http://127.0.0.1:{port}", stdout, stderr)
        started.append(server)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"userdesk serve exited with {process.returncode}\n{server.describe()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"userdesk serve did not answer /healthz\n{server.describe()}")
            time.sleep(0.1)

    try:
        yield start
    finally:
        for server in started:
            stop(server)


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
