"""Email delivery against a real SMTP server (aiosmtpd, in this process): content and headers,
retries with backoff, failure after N tries, leases that outlive a dead worker, the mail
catcher, the test email, and two workers on PostgreSQL never sending one email twice."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, text

from tests import conftest
from tests.conftest import Account, Directory, ShiftableClock, postgres_only
from tests.processes import Cli, free_port
from userdesk.db import Database
from userdesk.mail.worker import MailWorker
from userdesk.models import OutboxMessage
from userdesk.queue import LEASE

PASSWORD = "a long enough passphrase"


@dataclass
class Inbox:
    """An SMTP server's handler: keeps what it accepts; can be told to refuse for a while."""

    received: list[EmailMessage] = field(default_factory=list)
    refused_ids: list[str] = field(default_factory=list)
    refuse: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if self.refuse:
            self.refused_ids.append(str(message["Message-ID"]))
            return "451 4.3.0 mailbox busy, try again later"
        self.received.append(message)
        return "250 2.0.0 OK queued as 4711"


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int
    controller: Controller
    running: bool = True

    def stop(self) -> None:
        self.controller.stop()
        self.running = False

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self.running = True


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    server = SmtpServer(inbox, port, controller)
    yield server
    if server.running:
        server.stop()


async def _configure(client: httpx.AsyncClient, owner: Account, port: int, **extra: Any) -> None:
    response = await client.patch(
        "/api/v1/settings",
        json={
            "name": "Acme",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "mail_from_address": "desk@acme.example",
            "mail_from_name": "Acme Desk",
            **extra,
        },
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text


async def _rows(database: Database) -> list[OutboxMessage]:
    async with database.reader() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def _parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


async def test_a_queued_email_is_delivered_with_its_headers_and_both_parts(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    smtp_server: SmtpServer,
) -> None:
    await _configure(client, owner, smtp_server.port)
    user = await directory.create("rosa", password=PASSWORD, name="Rosa <b>Díaz</b>")
    await client.post(
        f"/api/v1/users/{user['id']}/password/reset", json={"mode": "random"}, headers=owner.headers
    )
    assert await MailWorker(database).run_once() == 1
    [message] = smtp_server.inbox.received
    assert message["To"] == "rosa@example.com"
    assert message["From"] == "Acme Desk <desk@acme.example>"
    assert "Acme" in message["Subject"]
    assert message["Message-ID"].startswith("<userdesk.") and message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    plain, html = _parts(message)
    [row] = await _rows(database)
    async with database.reader() as session:
        payload = (await session.execute(text("SELECT payload FROM outbox"))).scalar_one()
    # The password reached the user, though the queue never held it in clear.
    password = next(word for word in plain.split() if len(word) >= 16)
    assert password in html and password not in str(payload)
    assert (
        await client.post("/api/v1/auth/login", json={"login": "rosa", "password": password})
    ).status_code == 200
    assert "<b>Díaz</b>" not in html  # the name is escaped
    assert (row.status, row.attempts, row.message_id) == ("sent", 1, message["Message-ID"])
    listed = (await client.get("/api/v1/mail", headers=owner.headers)).json()["items"]
    assert [(m["status"], m["to"]) for m in listed] == [("sent", "rosa@example.com")]


async def test_a_refusing_server_gets_retries_with_backoff_and_the_same_message_id(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    clock: ShiftableClock,
    smtp_server: SmtpServer,
) -> None:
    await _configure(client, owner, smtp_server.port)
    await directory.create("walt", send_welcome_email=True)
    smtp_server.inbox.refuse = True
    worker = MailWorker(database)
    assert await worker.run_once() == 1
    [row] = await _rows(database)
    assert (row.status, row.attempts) == ("queued", 1)
    assert "451" in (row.last_error or "")
    assert timedelta(seconds=25) < row.next_attempt_at - clock.now() < timedelta(seconds=35)
    assert await worker.run_once() == 0  # not due yet
    clock.advance(timedelta(seconds=40))
    assert await worker.run_once() == 1
    [row] = await _rows(database)
    assert row.attempts == 2
    assert timedelta(seconds=50) < row.next_attempt_at - clock.now() < timedelta(seconds=70)

    smtp_server.inbox.refuse = False
    clock.advance(timedelta(minutes=2))
    assert await worker.run_once() == 1
    [message] = smtp_server.inbox.received
    assert smtp_server.inbox.refused_ids == [message["Message-ID"]] * 2
    [row] = await _rows(database)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)


async def test_after_the_last_try_an_email_fails_visibly_and_an_admin_retries_it(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    clock: ShiftableClock,
    smtp_server: SmtpServer,
) -> None:
    await _configure(client, owner, smtp_server.port, mail_max_attempts=2)
    await directory.create("fay", send_welcome_email=True)
    smtp_server.stop()  # connection refused
    worker = MailWorker(database)
    for _ in range(2):
        assert await worker.run_once() == 1
        clock.advance(timedelta(hours=3))
    assert await worker.run_once() == 0
    [row] = await _rows(database)
    assert (row.status, row.attempts) == ("failed", 2)
    failed = (await client.get("/api/v1/mail?status=failed", headers=owner.headers)).json()
    assert [m["id"] for m in failed["items"]] == [row.id]
    assert failed["items"][0]["last_error"]

    smtp_server.start()
    retried = await client.post(f"/api/v1/mail/{row.id}/retry", headers=owner.headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "queued"
    again = await client.post(f"/api/v1/mail/{row.id}/retry", headers=owner.headers)
    assert again.status_code == 409
    assert await worker.run_once() == 1
    assert len(smtp_server.inbox.received) == 1
    actions = [
        e["action"]
        for e in (await client.get("/api/v1/audit", headers=owner.headers)).json()["items"]
    ]
    assert "mail.retried" in actions


async def test_a_worker_that_dies_mid_send_loses_no_email(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    clock: ShiftableClock,
    smtp_server: SmtpServer,
) -> None:
    await _configure(client, owner, smtp_server.port)
    await directory.create("kim", send_welcome_email=True)
    claimed, _ = await MailWorker(database)._claim()  # claimed, then the worker is killed
    assert len(claimed) == 1
    survivor = MailWorker(database)
    assert await survivor.run_once() == 0  # another worker leaves a claimed email alone...
    clock.advance(LEASE + timedelta(seconds=1))
    assert await survivor.run_once() == 1  # ...until the dead worker's lease runs out
    [message] = smtp_server.inbox.received
    assert message["Message-ID"] == claimed[0].message_id


async def test_without_smtp_the_mail_catcher_keeps_every_email_for_admins(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await directory.create("cat", password=PASSWORD)
    await client.post("/api/v1/auth/password/forgot", json={"login": "cat"})
    with caplog.at_level("INFO", logger="userdesk.mail"):
        assert await MailWorker(database).run_once() == 1
    [row] = await _rows(database)
    assert row.status == "captured"
    listed = await client.get("/api/v1/mail", headers=owner.headers)
    [mail] = listed.json()["items"]
    assert mail["to"] == "cat@example.com" and mail["status"] == "captured"
    assert (
        "reset-password#token=udl_" in mail["text"] and "reset-password#token=udl_" in mail["html"]
    )
    assert "reset-password#token=udl_" in caplog.text  # serve's log shows the link too
    plain = await directory.account("plain")
    assert (await client.get("/api/v1/mail", headers=plain.headers)).status_code == 403
    for params in ({"status": "lost"}, {"limit": 0}, {"cursor": "nonsense"}):
        assert (
            await client.get("/api/v1/mail", params=params, headers=owner.headers)
        ).status_code == 422


async def test_the_smtp_password_is_write_only_and_sealed(
    client: httpx.AsyncClient, database: Database, owner: Account
) -> None:
    secret = "smtp-pass-Zq81"
    response = await client.patch(
        "/api/v1/settings",
        json={"smtp_host": "mail.example.com", "smtp_username": "desk", "smtp_password": secret},
        headers=owner.headers,
    )
    assert response.status_code == 200
    assert response.json()["smtp_password_set"] is True
    assert response.json()["email_configured"] is True
    assert secret not in response.text
    assert secret not in (await client.get("/api/v1/settings", headers=owner.headers)).text
    assert secret not in (await client.get("/api/v1/audit", headers=owner.headers)).text
    async with database.reader() as session:
        stored = (await session.execute(text("SELECT smtp_password FROM workspace"))).scalar_one()
    assert stored.startswith("sealed:v1:") and secret not in stored
    for body, field_name in (
        ({"smtp_host": "bad host"}, "smtp_host"),
        ({"smtp_port": 70000}, "smtp_port"),
        ({"smtp_security": "ssl3"}, "smtp_security"),
        ({"mail_from_address": "nope"}, "mail_from_address"),
        ({"mail_max_attempts": 0}, "mail_max_attempts"),
    ):
        bad = await client.patch("/api/v1/settings", json=body, headers=owner.headers)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == field_name


async def test_the_test_email_reports_the_servers_answer(
    client: httpx.AsyncClient, owner: Account, smtp_server: SmtpServer
) -> None:
    unconfigured = await client.post(
        "/api/v1/settings/email/test", json={"to": "me@example.com"}, headers=owner.headers
    )
    assert unconfigured.status_code == 409
    await _configure(client, owner, smtp_server.port)
    sent = await client.post("/api/v1/settings/email/test", json={}, headers=owner.headers)
    assert sent.json()["ok"] is True, sent.text
    assert "4711" in sent.json()["answer"]
    [message] = smtp_server.inbox.received
    assert message["To"] == "olive@example.com"
    smtp_server.inbox.refuse = True
    refused = await client.post("/api/v1/settings/email/test", json={}, headers=owner.headers)
    assert refused.json()["ok"] is False and "451" in refused.json()["answer"]


@postgres_only
async def test_two_workers_never_send_one_email_twice(
    client: httpx.AsyncClient,
    database: Database,
    database_url: str,
    owner: Account,
    directory: Directory,
    clock: ShiftableClock,
    smtp_server: SmtpServer,
) -> None:
    await _configure(client, owner, smtp_server.port)
    for n in range(30):
        await directory.create(f"guest{n}", send_welcome_email=True)
    other = Database(database_url, conftest.test_services(clock))
    try:
        first, second = MailWorker(database, batch=4), MailWorker(other, batch=4)

        async def drain(worker: MailWorker) -> int:
            total = 0
            while handled := await worker.run_once():
                total += handled
            return total

        counts = await asyncio.gather(drain(first), drain(second))
    finally:
        await other.dispose()
    ids = [m["Message-ID"] for m in smtp_server.inbox.received]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert sum(counts) == 30 and min(counts) > 0  # both took part
    assert {row.status for row in await _rows(database)} == {"sent"}


def test_the_worker_command_delivers_what_the_cli_queued(
    database_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    cli = Cli(database_url, tmp_path)
    cli.create_owner()
    for key, value in (
        ("smtp_host", "127.0.0.1"),
        ("smtp_port", str(smtp_server.port)),
        ("smtp_security", "none"),
    ):
        cli("settings", "set", key, value).ok()
    cli(
        "users",
        "create",
        "--username",
        "wes",
        "--email",
        "wes@example.com",
        "--name",
        "Wes",
        "--welcome-email",
    ).ok()
    done = cli("worker", "--once").ok()
    assert "handled 1" in done.stdout
    [message] = smtp_server.inbox.received
    assert message["To"] == "wes@example.com"


async def test_answers_warn_when_an_email_will_not_leave_the_server(
    client: httpx.AsyncClient, owner: Account, directory: Directory, smtp_server: SmtpServer
) -> None:
    body = {"name": "Una", "username": "una", "email": "una@example.com"}
    created = await client.post(
        "/api/v1/users", json={**body, "send_welcome_email": True}, headers=owner.headers
    )
    assert "not configured" in created.json()["warning"]
    reset = await client.post(
        f"/api/v1/users/{created.json()['id']}/password/reset",
        json={"mode": "random"},
        headers=owner.headers,
    )
    assert "mail catcher" in reset.json()["warning"]
    quiet = await directory.create("quiet")  # no email queued: nothing to warn about
    assert quiet["warning"] is None
    invited = await client.post(
        "/api/v1/invitations", json={"emails": "ivy@example.com"}, headers=owner.headers
    )
    assert "not configured" in invited.json()["warning"]

    await _configure(client, owner, smtp_server.port)
    welcomed = await client.post(
        "/api/v1/users",
        json={
            "name": "Vic",
            "username": "vic",
            "email": "vic@example.com",
            "send_welcome_email": True,
        },
        headers=owner.headers,
    )
    assert welcomed.json()["warning"] is None


async def test_retry_of_an_id_no_database_holds(client: Any, owner: Any) -> None:
    answer = await client.post("/api/v1/mail/99999999999999999999/retry", headers=owner.headers)
    assert answer.status_code == 404
