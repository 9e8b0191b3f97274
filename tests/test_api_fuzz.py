"""Schemathesis drives a real `userdesk serve` from its OpenAPI document: hundreds of
generated requests, valid and invalid, none of which may get a 5xx or an answer the document
does not describe (status, content type, body schema, headers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import Cli, StartServer, base_environment

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    )
)


def _schemathesis() -> str:
    beside_python = Path(sys.executable).parent / "st"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which("st")
    if found is None:
        pytest.fail("schemathesis (st) is not installed; install the test extras")
    return found


def test_generated_requests_never_break_the_api(
    database_url: str, tmp_path: Path, start_server: StartServer
) -> None:
    cli = Cli(database_url, tmp_path)
    cli.create_owner("olive")
    _, secret = cli.token("olive")
    # The generated requests register webhooks to whatever URLs they make up: no worker
    # delivers them, so nothing leaves this machine.
    cli.env["USERDESK_MAIL_WORKER"] = "false"
    server = start_server(cli)
    run = subprocess.run(
        [
            _schemathesis(),
            "run",
            f"{server.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {secret}",
            "--checks",
            CHECKS,
            "--max-examples",
            "15",
            "--workers",
            "1",
            "--seed",
            "20261128",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=base_environment(),
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
