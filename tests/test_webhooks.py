"""Outgoing webhooks against a real receiver on 127.0.0.1: registration through the API,
delivery by the worker with the headers and signature the README documents, retries with
backoff, timeouts, no redirects, redelivery, the SSRF rule, permissions and validation."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from tests.conftest import Account, Directory, ShiftableClock, postgres_only
from tests.test_console_http import ORIGIN, PASSWORD, sign_in
from userdesk.actions.context import Actor
from userdesk.actions.inputs import UserCreate, WebhookCreate
from userdesk.actions.users import create_user
from userdesk.actions.webhook_events import queue_event
from userdesk.actions.webhooks import create_webhook, delete_webhook
from userdesk.db import Database
from userdesk.models import OutboxMessage
from userdesk.queue import LEASE, claim_due, release
from userdesk.security.addresses import SystemResolver, refusal
from userdesk.webhooks import worker as webhook_worker
from userdesk.webhooks.worker import MAX_ATTEMPTS, WebhookWorker
from userdesk.worker import OutboxWorker

README = Path(__file__).parent.parent / "README.md"


def readme_verifier() -> Any:
    """The verification snippet of the README's Webhooks section, run as a receiver would."""
    section = README.read_text().split("## Webhooks", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the README's Webhooks section has no Python snippet"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    return namespace["verify_signature"]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"thanks"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Receiver:
    """A tiny HTTP/1.1 server that records each request and answers from a script (then 200)."""

    requests: list[Received] = field(default_factory=list)
    script: list[Answer] = field(default_factory=list)
    port: int = 0
    # Keep each connection open for the next request, as most servers do.
    keep_alive: bool = False

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                request_line, *lines = head.strip().split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Received(method, path, headers, body))
                answer = self.script.pop(0) if self.script else Answer()
                await asyncio.sleep(answer.delay)
                extra = "".join(f"{k}: {v}\r\n" for k, v in answer.headers.items())
                connection = "keep-alive" if self.keep_alive else "close"
                writer.write(
                    f"HTTP/1.1 {answer.status} Whatever\r\nContent-Length: {len(answer.body)}"
                    f"\r\nConnection: {connection}\r\n{extra}\r\n".encode()
                    + answer.body
                )
                await writer.drain()
                if not self.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the worker gave up on a slow answer, or closed a kept-alive connection
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    yield receiver
    server.close()


async def register(
    client: httpx.AsyncClient, account: Account, **body: Any
) -> tuple[dict[str, Any], str | None]:
    body.setdefault("events", ["user.created"])
    response = await client.post("/api/v1/webhooks", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()["webhook"], response.json()["secret"]


async def deliveries(
    client: httpx.AsyncClient, account: Account | None, webhook_id: str
) -> list[dict[str, Any]]:
    """The endpoint's delivery log, as `account` (or as the console's signed-in session)."""
    response = await client.get(
        f"/api/v1/webhooks/{webhook_id}/deliveries", headers=account.headers if account else {}
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


def problem_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    error = (body.get("errors") or [{"field": body.get("field"), "code": body["code"]}])[0]
    return response.status_code, error["field"], error["code"]


async def test_an_event_is_delivered_with_its_body_headers_and_a_signature_that_verifies(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
    clock: ShiftableClock,
) -> None:
    webhook, secret = await register(
        client,
        owner,
        url=receiver.url(),
        description="HR system",
        events=["user.created", "user.deactivated"],
        allow_private_network=True,
    )
    assert secret is not None and secret.startswith("whsec_")
    # The secret is answered once, and stored sealed.
    fetched = await client.get(f"/api/v1/webhooks/{webhook['id']}", headers=owner.headers)
    assert "secret" not in fetched.json() and secret not in fetched.text
    async with database.reader() as session:
        stored = (await session.execute(text("SELECT secret FROM webhook_endpoints"))).scalar()
    assert stored.startswith("sealed:v1:") and secret not in stored

    user = await directory.create("rosa", name="Rosa Díaz")
    assert receiver.requests == []  # nothing is sent inside the request
    [queued] = await deliveries(client, owner, webhook["id"])
    assert (queued["status"], queued["attempts"], queued["event_type"]) == (
        "queued",
        0,
        "user.created",
    )

    assert await OutboxWorker(database).run_once() >= 1
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/hook")
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("userdesk-webhooks/")
    assert headers["host"] == f"127.0.0.1:{receiver.port}"
    event = request.json()
    assert headers["x-userdesk-event-id"] == event["id"] == queued["event_id"]
    assert headers["x-userdesk-event"] == "user.created" == event["type"]
    assert event["actor"] == {"id": owner.id, "name": "olive"}
    assert event["target"] == {"type": "user", "id": user["id"], "name": "rosa"}
    assert event["changes"]["name"] == {"before": None, "after": "Rosa Díaz"}
    assert event["occurred_at"].endswith("Z")
    assert abs(int(headers["x-userdesk-timestamp"]) - clock.now().timestamp()) < 5
    assert headers["x-userdesk-signature"].startswith("sha256=")

    verify = readme_verifier()
    assert verify(
        secret, headers["x-userdesk-timestamp"], headers["x-userdesk-signature"], request.body
    )
    assert not verify(
        "whsec_another",
        headers["x-userdesk-timestamp"],
        headers["x-userdesk-signature"],
        request.body,
    )
    assert not verify(
        secret,
        headers["x-userdesk-timestamp"],
        headers["x-userdesk-signature"],
        request.body + b" ",
    )
    stale = str(int(headers["x-userdesk-timestamp"]) - 3600)
    assert not verify(secret, stale, headers["x-userdesk-signature"], request.body)

    [done] = await deliveries(client, owner, webhook["id"])
    assert (done["status"], done["attempts"], done["response_status"]) == ("delivered", 1, 200)
    assert done["response_body"] == "thanks" and done["delivered_at"] and done["last_error"] is None
    assert done["body"].encode() == request.body
    assert await OutboxWorker(database).run_once() == 0  # delivered once


async def test_only_active_endpoints_subscribed_to_the_event_get_it(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
) -> None:
    await register(
        client,
        owner,
        url=receiver.url("/off"),
        events=["user.created"],
        active=False,
        allow_private_network=True,
    )
    await register(
        client,
        owner,
        url=receiver.url("/deactivations"),
        events=["user.deactivated"],
        allow_private_network=True,
    )
    user = await directory.create("rosa")
    response = await client.post(f"/api/v1/users/{user['id']}/deactivate", headers=owner.headers)
    assert response.status_code == 200, response.text
    while await WebhookWorker(database).run_once():
        pass
    assert [(r.path, r.json()["type"]) for r in receiver.requests] == [
        ("/deactivations", "user.deactivated")
    ]


async def test_a_failed_attempt_is_retried_with_backoff_and_the_same_event(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
    clock: ShiftableClock,
) -> None:
    webhook, secret = await register(client, owner, url=receiver.url(), allow_private_network=True)
    receiver.script = [Answer(500, b"database down")]
    await directory.create("rosa")
    worker = WebhookWorker(database)
    assert await worker.run_once() == 1
    [failed] = await deliveries(client, owner, webhook["id"])
    assert (failed["status"], failed["attempts"], failed["response_status"]) == ("queued", 1, 500)
    assert failed["response_body"] == "database down"
    assert failed["last_error"] == "the receiver answered 500"
    delay = datetime.fromisoformat(failed["next_attempt_at"]) - clock.now()
    assert timedelta(seconds=25) < delay < timedelta(seconds=35)
    assert await worker.run_once() == 0  # not due yet
    clock.advance(timedelta(seconds=40))
    assert await worker.run_once() == 1
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["x-userdesk-event-id"] == second.headers["x-userdesk-event-id"]
    assert (
        int(second.headers["x-userdesk-timestamp"])
        >= int(first.headers["x-userdesk-timestamp"]) + 40
    )
    verify = readme_verifier()
    assert verify(
        secret,
        second.headers["x-userdesk-timestamp"],
        second.headers["x-userdesk-signature"],
        second.body,
        now=clock.now().timestamp(),
    )
    [done] = await deliveries(client, owner, webhook["id"])
    assert (done["status"], done["attempts"], done["response_status"]) == ("delivered", 2, 200)


async def test_after_the_last_attempt_a_delivery_fails_and_an_admin_redelivers_it(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
    clock: ShiftableClock,
) -> None:
    webhook, _ = await register(client, owner, url=receiver.url(), allow_private_network=True)
    receiver.script = [Answer(503) for _ in range(MAX_ATTEMPTS)]
    await directory.create("rosa")
    worker = WebhookWorker(database)
    for _ in range(MAX_ATTEMPTS):
        assert await worker.run_once() == 1
        clock.advance(timedelta(hours=3))
    assert await worker.run_once() == 0
    [failed] = await deliveries(client, owner, webhook["id"])
    assert (failed["status"], failed["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert len(receiver.requests) == MAX_ATTEMPTS

    redeliver = f"/api/v1/webhooks/{webhook['id']}/deliveries/{failed['id']}/redeliver"
    response = await client.post(redeliver, headers=owner.headers)
    assert response.status_code == 202, response.text
    assert (response.json()["status"], response.json()["attempts"]) == ("queued", 0)
    again = await client.post(redeliver, headers=owner.headers)
    assert problem_of(again) == (409, "status", "conflict")  # it is queued already
    assert await worker.run_once() == 1
    last = receiver.requests[-1]
    assert last.headers["x-userdesk-event-id"] == failed["event_id"]
    assert last.body.decode() == failed["body"]
    [done] = await deliveries(client, owner, webhook["id"])
    assert (done["id"], done["status"], done["attempts"]) == (failed["id"], "delivered", 1)
    audit = await client.get("/api/v1/audit", headers=owner.headers)
    assert "webhook.redelivered" in {e["action"] for e in audit.json()["items"]}


async def test_a_slow_receiver_times_out_and_is_retried(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
) -> None:
    webhook, _ = await register(client, owner, url=receiver.url(), allow_private_network=True)
    receiver.script = [Answer(delay=5)]
    started = time.monotonic()
    await directory.create("rosa")  # the request does not wait for the receiver
    assert await WebhookWorker(database, request_timeout=0.5).run_once() == 1
    assert time.monotonic() - started < 4
    [slow] = await deliveries(client, owner, webhook["id"])
    assert (slow["status"], slow["attempts"], slow["response_status"]) == ("queued", 1, None)
    assert slow["last_error"].startswith("timed out")


async def test_redirects_are_not_followed(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
) -> None:
    webhook, _ = await register(client, owner, url=receiver.url(), allow_private_network=True)
    receiver.script = [Answer(302, b"", {"Location": receiver.url("/elsewhere")})]
    await directory.create("rosa")
    assert await WebhookWorker(database).run_once() == 1
    assert [r.path for r in receiver.requests] == ["/hook"]
    [moved] = await deliveries(client, owner, webhook["id"])
    assert (moved["status"], moved["response_status"]) == ("queued", 302)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/",
        # Numeric forms the system's resolver reads as addresses (inet_aton's rules).
        "http://2130706433/hook",
        "http://0x7f.1/hook",
        "http://017700000001/hook",
        "http://127.1/hook",
        "http://0/hook",
        "http://[2002:7f00:1::]/hook",
    ],
)
async def test_private_addresses_are_refused_at_registration_unless_allowed(
    client: httpx.AsyncClient, owner: Account, url: str
) -> None:
    response = await client.post(
        "/api/v1/webhooks", json={"url": url, "events": ["user.created"]}, headers=owner.headers
    )
    assert problem_of(response) == (422, "url", "address_refused")
    allowed = await client.post(
        "/api/v1/webhooks",
        json={"url": url, "events": ["user.created"], "allow_private_network": True},
        headers=owner.headers,
    )
    # Cloud metadata is refused even then: no receiver lives there.
    if "169.254.169.254" in url:
        assert problem_of(allowed) == (422, "url", "address_refused")
    else:
        assert allowed.status_code == 201, allowed.text


async def test_a_host_name_resolving_to_loopback_is_refused_at_delivery_until_allowed(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
    clock: ShiftableClock,
) -> None:
    webhook, _ = await register(client, owner, url=receiver.url(host="localhost"))
    await directory.create("rosa")
    worker = WebhookWorker(database)
    assert await worker.run_once() == 1
    assert receiver.requests == []
    [refused] = await deliveries(client, owner, webhook["id"])
    assert refused["status"] == "queued"
    assert re.match(
        r"refused: localhost resolves to (127\.0\.0\.1|::1), a loopback address",
        refused["last_error"],
    ), refused["last_error"]

    response = await client.patch(
        f"/api/v1/webhooks/{webhook['id']}",
        json={"allow_private_network": True},
        headers=owner.headers,
    )
    assert response.status_code == 200 and response.json()["webhook"]["allow_private_network"]
    clock.advance(timedelta(seconds=40))
    assert await worker.run_once() == 1
    [request] = receiver.requests
    assert request.headers["host"] == f"localhost:{receiver.port}"


async def test_a_name_is_resolved_once_checked_and_the_connection_pinned_to_that_address(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
) -> None:
    answers = {"hooks.example.com": ["93.184.216.34", "10.0.0.5"], "pinned.example": ["127.0.0.1"]}
    looked_up: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return answers[host]

    refused, _ = await register(client, owner, url="https://hooks.example.com/hook")
    pinned, _ = await register(
        client, owner, url=receiver.url(host="pinned.example"), allow_private_network=True
    )
    await directory.create("rosa")
    assert await WebhookWorker(database, resolver=resolver).run_once() == 2
    assert sorted(looked_up) == ["hooks.example.com", "pinned.example"]
    [blocked] = await deliveries(client, owner, refused["id"])
    assert blocked["last_error"] == (
        "refused: hooks.example.com resolves to 10.0.0.5, a private address; an admin may "
        "allow private networks for this endpoint (allow_private_network)"
    )
    # pinned.example exists in no DNS: the request reached the address the resolver gave,
    # under the name the URL gave.
    [request] = receiver.requests
    assert request.headers["host"] == f"pinned.example:{receiver.port}"
    [done] = await deliveries(client, owner, pinned["id"])
    assert done["status"] == "delivered"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "fec0::1",  # site-local
        "2002:7f00:1::",  # 6to4 for 127.0.0.1
        "2002:a00:1::1",  # 6to4 for 10.0.0.1
        "2001:0:a00:1::1",  # Teredo with server 10.0.0.1
        "2001:0:808:808::80ff:fffe",  # Teredo with client 127.0.0.1
        "64:ff9b::7f00:1",  # NAT64 for 127.0.0.1
        "64:ff9b:1::a00:1",  # local-use NAT64 for 10.0.0.1
        "::10.0.0.1",  # IPv4-compatible
    ],
)
def test_non_public_addresses_are_refused_unless_allowed(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert refusal(ip, allow_private_network=False) is not None
    assert refusal(ip, allow_private_network=True) is None


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "168.63.129.16",  # Azure WireServer
        "192.0.0.192",  # Oracle Cloud
        "169.254.170.23",  # EKS Pod Identity
        "fd00:ec2::23",
        "2002:a9fe:a9fe::",  # 6to4
        "64:ff9b::a9fe:a9fe",  # NAT64
        "64:ff9b:1::a9fe:a9fe",
        "2001:0:a9fe:a9fe::1",  # Teredo server
        "2001:0:808:808::5601:5601",  # Teredo client
        "::169.254.169.254",  # IPv4-compatible
    ],
)
def test_cloud_metadata_addresses_are_always_refused(address: str) -> None:
    reason = refusal(ipaddress.ip_address(address), allow_private_network=True)
    assert reason is not None and "metadata" in reason


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2002:808:808::1"]
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private_network=False) is None


async def test_webhooks_need_the_webhooks_manage_permission(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    manager = await directory.account("mia", roles=["user-manager"])
    admin = await directory.account("ada", roles=["admin"])
    webhook, _ = await register(client, admin, url="https://hooks.example.com/in")
    for method, path in [
        ("GET", "/api/v1/webhooks"),
        ("POST", "/api/v1/webhooks"),
        ("GET", f"/api/v1/webhooks/{webhook['id']}"),
        ("PATCH", f"/api/v1/webhooks/{webhook['id']}"),
        ("DELETE", f"/api/v1/webhooks/{webhook['id']}"),
        ("GET", f"/api/v1/webhooks/{webhook['id']}/deliveries"),
        ("POST", f"/api/v1/webhooks/{webhook['id']}/ping"),
    ]:
        body = {"url": "https://x.example/", "events": ["user.created"]}
        response = await client.request(
            method,
            path,
            headers=manager.headers,
            json=body if method in ("POST", "PATCH") else None,
        )
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["permission"] == "webhooks.manage"
    listed = await client.get("/api/v1/webhooks", headers=owner.headers)
    assert [w["id"] for w in listed.json()["items"]] == [webhook["id"]]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"url": "ftp://files.example/in", "events": ["user.created"]}, "url", "url_scheme"),
        (
            {"url": "https://u:pw@hooks.example/", "events": ["user.created"]},
            "url",
            "url_credentials",
        ),
        ({"url": "https:///nohost", "events": ["user.created"]}, "url", "url_host"),
        ({"url": "https://hooks.example:99999/", "events": ["user.created"]}, "url", "url_format"),
        ({"url": "http://hooks.example:0/", "events": ["user.created"]}, "url", "url_port"),
        (
            {"url": "https://hooks.example/", "events": ["user.created"], "active": "yes"},
            "active",
            "bool_type",
        ),
        (
            {
                "url": "https://hooks.example/",
                "events": ["user.created"],
                "allow_private_network": "yes",
            },
            "allow_private_network",
            "bool_type",
        ),
        (
            {"url": "https://hooks.example/", "events": ["user.created"], "active": 1},
            "active",
            "bool_type",
        ),
        ({"url": "not a url", "events": ["user.created"]}, "url", "url_scheme"),
        ({"url": "https://hooks.example/", "events": []}, "events", "too_short"),
        ({"url": "https://hooks.example/", "events": ["user.exploded"]}, "events", "unknown_event"),
        (
            {"url": "https://hooks.example/", "events": ["user.created"], "secret": "short"},
            "secret",
            "secret_format",
        ),
        ({"events": ["user.created"]}, "url", "missing"),
        (
            {"url": "https://hooks.example/", "events": ["user.created"], "colour": "red"},
            "colour",
            "extra_forbidden",
        ),
    ],
)
async def test_bad_registrations_are_422_naming_the_field_and_rule(
    client: httpx.AsyncClient, owner: Account, body: dict[str, Any], field: str, code: str
) -> None:
    response = await client.post("/api/v1/webhooks", json=body, headers=owner.headers)
    assert problem_of(response) == (422, field, code)


async def test_updates_are_validated_and_audited_and_unknown_ids_are_404(
    client: httpx.AsyncClient, owner: Account
) -> None:
    webhook, _ = await register(client, owner, url="https://hooks.example/in")
    path = f"/api/v1/webhooks/{webhook['id']}"
    for body, name, code in [
        ({"url": None}, "url", "null_not_allowed"),
        ({"secret": "a long enough secret", "rotate_secret": True}, "rotate_secret", "conflicting"),
        ({"url": "http://10.0.0.1/"}, "url", "address_refused"),
        ({"url": "http://0x0a.1/"}, "url", "address_refused"),
        ({"allow_private_network": "true"}, "allow_private_network", "bool_type"),
        ({"rotate_secret": "yes"}, "rotate_secret", "bool_type"),
    ]:
        assert problem_of(await client.patch(path, json=body, headers=owner.headers)) == (
            422,
            name,
            code,
        )
    changed = await client.patch(
        path,
        json={"url": "https://hooks.example/v2", "events": ["user.deleted"], "active": False},
        headers=owner.headers,
    )
    assert changed.status_code == 200 and changed.json()["secret"] is None
    view = changed.json()["webhook"]
    assert (view["url"], view["events"], view["active"]) == (
        "https://hooks.example/v2",
        ["user.deleted"],
        False,
    )
    audit = (await client.get("/api/v1/audit", headers=owner.headers)).json()["items"]
    updated = next(e for e in audit if e["action"] == "webhook.updated")
    assert updated["changes"]["url"] == {
        "before": "https://hooks.example/in",
        "after": "https://hooks.example/v2",
    }
    assert {e["action"] for e in audit} >= {"webhook.created", "webhook.updated"}
    assert (await client.get("/api/v1/webhooks/nope", headers=owner.headers)).status_code == 404
    for delivery_id in ("1", str(2**70), "-3"):
        response = await client.get(f"{path}/deliveries/{delivery_id}", headers=owner.headers)
        assert response.status_code in (404, 422), response.text
    bad_cursor = await client.get(f"{path}/deliveries?cursor=xyz", headers=owner.headers)
    assert problem_of(bad_cursor) == (422, "cursor", "invalid_cursor")
    deleted = await client.delete(path, headers=owner.headers)
    assert deleted.status_code == 204
    assert (await client.get(path, headers=owner.headers)).status_code == 404


async def test_a_rotated_secret_signs_the_next_delivery_and_ping_reaches_any_endpoint(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    receiver: Receiver,
) -> None:
    webhook, old = await register(
        client, owner, url=receiver.url(), events=["user.deleted"], allow_private_network=True
    )
    rotated = await client.patch(
        f"/api/v1/webhooks/{webhook['id']}", json={"rotate_secret": True}, headers=owner.headers
    )
    new = rotated.json()["secret"]
    assert new and new != old
    ping = await client.post(f"/api/v1/webhooks/{webhook['id']}/ping", headers=owner.headers)
    assert ping.status_code == 202 and ping.json()["event_type"] == "ping"
    assert await WebhookWorker(database).run_once() == 1
    [request] = receiver.requests
    assert request.json()["type"] == "ping"
    assert request.json()["target"] == {
        "type": "webhook",
        "id": webhook["id"],
        "name": receiver.url(),
    }
    verify = readme_verifier()
    args = (
        request.headers["x-userdesk-timestamp"],
        request.headers["x-userdesk-signature"],
        request.body,
    )
    assert verify(new, *args) and not verify(old, *args)
    chosen = await client.post(
        "/api/v1/webhooks",
        json={
            "url": "https://hooks.example/",
            "events": ["user.created"],
            "secret": "my own secret 123",
        },
        headers=owner.headers,
    )
    assert chosen.status_code == 201 and chosen.json()["secret"] is None


async def test_the_delivery_log_is_paged_newest_first(
    client: httpx.AsyncClient, owner: Account
) -> None:
    webhook, _ = await register(client, owner, url="https://hooks.example/in")
    for _ in range(3):
        await client.post(f"/api/v1/webhooks/{webhook['id']}/ping", headers=owner.headers)
    path = f"/api/v1/webhooks/{webhook['id']}/deliveries"
    first = (await client.get(f"{path}?limit=2", headers=owner.headers)).json()
    second = (
        await client.get(f"{path}?limit=2&cursor={first['next_cursor']}", headers=owner.headers)
    ).json()
    ids = [d["id"] for d in first["items"] + second["items"]]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True) and second["next_cursor"] is None
    assert problem_of(await client.get(f"{path}?limit=0", headers=owner.headers)) == (
        422,
        "limit",
        "range",
    )


async def _webhook_rows(database: Database) -> int:
    async with database.reader() as session:
        return (
            await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.kind.startswith("webhook."))
            )
            or 0
        )


async def test_a_rolled_back_change_sends_nothing(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    receiver: Receiver,
) -> None:
    system = Actor.system("test")
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await create_webhook(
                session,
                actor=system,
                data=WebhookCreate(
                    url=receiver.url(), events=["user.created"], allow_private_network=True
                ),
            )
            await create_user(
                session,
                actor=system,
                data=UserCreate(name="Rosa", username="rosa", email="rosa@example.com"),
            )
            assert await _webhook_rows(database) == 0  # not visible outside before commit
            raise RuntimeError("the change fails after both")
    assert (await client.get("/api/v1/webhooks", headers=owner.headers)).json()["items"] == []
    # A committed endpoint and a failing change: the change's delivery goes with it.
    await register(client, owner, url=receiver.url(), allow_private_network=True)
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await create_user(
                session,
                actor=system,
                data=UserCreate(name="Rosa", username="rosa", email="rosa@example.com"),
            )
            raise RuntimeError("the change fails")
    assert await _webhook_rows(database) == 0
    assert await WebhookWorker(database).run_once() == 0
    assert receiver.requests == []


async def test_deleting_an_endpoint_drops_what_was_queued_for_it(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
) -> None:
    webhook, _ = await register(client, owner, url=receiver.url(), allow_private_network=True)
    await directory.create("rosa")
    assert await _webhook_rows(database) == 1
    assert (
        await client.delete(f"/api/v1/webhooks/{webhook['id']}", headers=owner.headers)
    ).status_code == 204
    assert await _webhook_rows(database) == 0
    assert await WebhookWorker(database).run_once() == 0
    assert receiver.requests == []


async def test_an_account_locked_by_failed_sign_ins_sends_an_event(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
) -> None:
    await register(
        client,
        owner,
        url=receiver.url(),
        events=["user.sign_in_failures_exceeded"],
        allow_private_network=True,
    )
    response = await client.patch(
        "/api/v1/settings", json={"lockout_threshold": 3}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    user = await directory.create("rosa", password="a long enough passphrase")
    for attempt in range(3):
        failed = await client.post(
            "/api/v1/auth/login", json={"login": "rosa", "password": f"wrong {attempt}"}
        )
        assert failed.status_code == 401, failed.text
        if attempt < 2:
            assert await _webhook_rows(database) == 0  # below the threshold: nothing
    assert await WebhookWorker(database).run_once() == 1
    [request] = receiver.requests
    event = request.json()
    assert event["type"] == "user.sign_in_failures_exceeded"
    assert event["target"] == {"type": "user", "id": user["id"], "name": "rosa"}
    assert event["changes"]["failures"] == {"before": None, "after": 3}


async def test_the_event_catalogue_is_listed(client: httpx.AsyncClient, owner: Account) -> None:
    response = await client.get("/api/v1/webhooks/events", headers=owner.headers)
    assert response.json()["events"] == [
        "user.created",
        "user.updated",
        "user.roles_changed",
        "user.deactivated",
        "user.activated",
        "user.deleted",
        "invitation.sent",
        "invitation.accepted",
        "user.sign_in_failures_exceeded",
    ]


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now().astimezone()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("certified", ["receiver.test", "other.test"])
async def test_over_https_the_pinned_connection_checks_the_certificate_for_the_urls_name(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    tmp_path: Path,
    certified: str,
) -> None:
    cert, key = _certificate(tmp_path, certified)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=serving)
    receiver.port = server.sockets[0].getsockname()[1]
    trust = ssl.create_default_context(cafile=str(cert))

    async def resolver(host: str, port: int) -> list[str]:
        return {"receiver.test": ["127.0.0.1"]}[host]

    try:
        webhook, _ = await register(
            client,
            owner,
            url=f"https://receiver.test:{receiver.port}/hook",
            allow_private_network=True,
        )
        await directory.create("rosa")
        assert await WebhookWorker(database, resolver=resolver, trust=trust).run_once() == 1
    finally:
        server.close()
    [delivery] = await deliveries(client, owner, webhook["id"])
    if certified == "receiver.test":
        # Connected to 127.0.0.1, yet TLS named and verified receiver.test.
        [request] = receiver.requests
        assert request.headers["host"] == f"receiver.test:{receiver.port}"
        assert delivery["status"] == "delivered"
    else:
        assert receiver.requests == []
        assert delivery["status"] == "queued"
        assert "certificate" in delivery["last_error"].lower(), delivery["last_error"]


async def test_the_console_registers_an_endpoint_shows_its_secret_once_and_its_log(
    client: httpx.AsyncClient,
    database: Database,
    directory: Directory,
    receiver: Receiver,
) -> None:
    await directory.account("ada", roles=["admin"], password=PASSWORD)
    await directory.account("mia", roles=["user-manager"], password=PASSWORD)
    token = await sign_in(client, "ada")
    listing = await client.get("/webhooks")
    assert listing.status_code == 200 and 'href="/webhooks"' in listing.text

    refused = await client.post(
        "/webhooks",
        data={"csrf_token": token, "url": "ftp://files.example/", "events": ["user.created"]},
        headers=ORIGIN,
    )
    assert refused.status_code == 422
    assert "must be an http:// or https:// URL" in refused.text
    assert 'value="ftp://files.example/"' in refused.text  # the form keeps what was typed

    made = await client.post(
        "/webhooks",
        data={
            "csrf_token": token,
            "url": receiver.url(),
            "description": "<b>HR</b>",
            "events": ["user.created", "user.deleted"],
            "allow_private_network": "on",
        },
        headers=ORIGIN,
    )
    assert made.status_code == 200, made.text
    secret = re.search(r'<code id="webhook-secret">(whsec_[^<]+)</code>', made.text)
    assert secret is not None
    assert "&lt;b&gt;HR&lt;/b&gt;" in made.text and "<b>HR</b>" not in made.text
    [webhook] = (await client.get("/api/v1/webhooks")).json()["items"]
    assert (webhook["events"], webhook["allow_private_network"]) == (
        ["user.created", "user.deleted"],
        True,
    )
    page_url = f"/webhooks/{webhook['id']}"
    reopened = await client.get(page_url)
    assert secret.group(1) not in reopened.text  # shown once

    pinged = await client.post(f"{page_url}/ping", data={"csrf_token": token}, headers=ORIGIN)
    assert pinged.status_code == 303
    assert await WebhookWorker(database).run_once() == 1
    verify = readme_verifier()
    [request] = receiver.requests
    assert verify(
        secret.group(1),
        request.headers["x-userdesk-timestamp"],
        request.headers["x-userdesk-signature"],
        request.body,
    )
    log = await client.get(page_url)
    assert "ping" in log.text and "delivered" in log.text and "Redeliver" in log.text
    [delivery] = await deliveries(client, None, webhook["id"])
    again = await client.post(
        f"{page_url}/deliveries/{delivery['id']}/redeliver",
        data={"csrf_token": token},
        headers=ORIGIN,
    )
    assert again.status_code == 303
    assert (await deliveries(client, None, webhook["id"]))[0]["status"] == "queued"

    paused = await client.post(
        f"{page_url}/active", data={"csrf_token": token, "active": "false"}, headers=ORIGIN
    )
    assert paused.status_code == 303
    assert (await client.get(f"/api/v1/webhooks/{webhook['id']}")).json()["active"] is False
    no_token = await client.post(f"{page_url}/delete", data={}, headers=ORIGIN)
    assert no_token.status_code == 403
    gone = await client.post(f"{page_url}/delete", data={"csrf_token": token}, headers=ORIGIN)
    assert gone.status_code == 303 and gone.headers["location"] == "/webhooks"
    assert (await client.get("/api/v1/webhooks")).json()["items"] == []

    await client.post("/logout", data={"csrf_token": token}, headers=ORIGIN)
    await sign_in(client, "mia")
    assert (await client.get("/webhooks")).status_code == 403
    assert 'href="/webhooks"' not in (await client.get("/users")).text


async def test_a_delivery_for_an_endpoint_paused_meanwhile_fails_and_is_redelivered_later(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
) -> None:
    webhook, _ = await register(client, owner, url=receiver.url(), allow_private_network=True)
    await directory.create("rosa")  # queued while active
    path = f"/api/v1/webhooks/{webhook['id']}"
    await client.patch(path, json={"active": False}, headers=owner.headers)
    assert await WebhookWorker(database).run_once() == 1
    assert receiver.requests == []
    [paused] = await deliveries(client, owner, webhook["id"])
    assert (paused["status"], paused["last_error"]) == ("failed", "the endpoint is inactive")
    redeliver = f"{path}/deliveries/{paused['id']}/redeliver"
    assert problem_of(await client.post(redeliver, headers=owner.headers)) == (
        409,
        "active",
        "conflict",
    )
    await client.patch(path, json={"active": True}, headers=owner.headers)
    assert (await client.post(redeliver, headers=owner.headers)).status_code == 202
    assert await WebhookWorker(database).run_once() == 1
    assert [r.json()["id"] for r in receiver.requests] == [paused["event_id"]]


async def test_a_name_that_takes_too_long_to_resolve_times_out(
    client: httpx.AsyncClient, database: Database, owner: Account, directory: Directory
) -> None:
    async def slow_resolver(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["192.0.2.1"]  # a documentation address: refused, were it ever reached

    webhook, _ = await register(client, owner, url="https://slow-dns.example/hook")
    await directory.create("rosa")
    started = time.monotonic()
    worker = WebhookWorker(database, resolver=slow_resolver, request_timeout=0.5)
    assert await worker.run_once() == 1
    assert time.monotonic() - started < 4
    [slow] = await deliveries(client, owner, webhook["id"])
    assert slow["status"] == "queued" and slow["last_error"].startswith("timed out")


async def test_an_answer_holding_a_nul_byte_is_kept_and_the_event_sent_once(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
    clock: ShiftableClock,
) -> None:
    # PostgreSQL refuses NUL in text: storing the answer as received failed the whole
    # recording, and the event was sent again at every lease's end.
    webhook, _ = await register(client, owner, url=receiver.url(), allow_private_network=True)
    receiver.script = [Answer(200, b"OK\x00")]
    await directory.create("rosa")
    worker = WebhookWorker(database)
    assert await worker.run_once() == 1
    for _ in range(2):
        clock.advance(timedelta(minutes=6))
        assert await worker.run_once() == 0
    assert len(receiver.requests) == 1
    [done] = await deliveries(client, owner, webhook["id"])
    assert (done["status"], done["attempts"]) == ("delivered", 1)
    assert done["response_body"] == "OK\ufffd"


async def test_an_unexpected_error_fails_one_attempt_and_the_rest_of_the_batch_is_delivered(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        if host == "broken.example":
            raise RuntimeError("the resolver has a bug")
        return ["127.0.0.1"]

    broken, _ = await register(client, owner, url="https://broken.example/hook")
    fine, _ = await register(
        client, owner, url=receiver.url(host="fine.example"), allow_private_network=True
    )
    await directory.create("rosa")
    assert await WebhookWorker(database, resolver=resolver).run_once() == 2
    [failed] = await deliveries(client, owner, broken["id"])
    assert (failed["status"], failed["attempts"]) == ("queued", 1)
    assert failed["last_error"] == "RuntimeError: the resolver has a bug"
    [done] = await deliveries(client, owner, fine["id"])
    assert done["status"] == "delivered" and len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("typed", "ascii_name"),
    [("bücher.test", "xn--bcher-kva.test"), ("\uff42\uff55\uff43\uff48.test", "buch.test")],
)
async def test_an_internationalised_host_is_sent_in_its_idna_form(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
    typed: str,
    ascii_name: str,
) -> None:
    looked_up: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["127.0.0.1"]

    webhook, _ = await register(
        client, owner, url=receiver.url(host=typed), allow_private_network=True
    )
    await directory.create("rosa")
    assert await WebhookWorker(database, resolver=resolver).run_once() == 1
    assert looked_up == [ascii_name]
    [request] = receiver.requests
    assert request.headers["host"] == f"{ascii_name}:{receiver.port}"
    [done] = await deliveries(client, owner, webhook["id"])
    assert done["status"] == "delivered"


@pytest.mark.parametrize("host", ["\u2603.test", "\u0627a.test", "b\u00fccher..test"])
async def test_a_host_without_an_idna_form_is_refused_at_registration(
    client: httpx.AsyncClient, owner: Account, host: str
) -> None:
    response = await client.post(
        "/api/v1/webhooks",
        json={"url": f"https://{host}/hook", "events": ["user.created"]},
        headers=owner.headers,
    )
    assert problem_of(response) == (422, "url", "url_host_idna")


async def test_over_https_a_second_host_on_the_same_address_gets_its_own_certificate_check(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    tmp_path: Path,
) -> None:
    # A connection kept alive for receiver.test was reused for attacker.test (the pool is
    # keyed by the pinned address), skipping the check of attacker.test's certificate.
    cert, key = _certificate(tmp_path, "receiver.test")
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    receiver = Receiver(keep_alive=True)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=serving)
    receiver.port = server.sockets[0].getsockname()[1]

    async def resolver(host: str, port: int) -> list[str]:
        if host == "attacker.test":  # after receiver.test's delivery is done
            await asyncio.sleep(0.5)
        return ["127.0.0.1"]

    try:
        genuine, _ = await register(
            client,
            owner,
            url=f"https://receiver.test:{receiver.port}/a",
            allow_private_network=True,
        )
        impostor, _ = await register(
            client,
            owner,
            url=f"https://attacker.test:{receiver.port}/b",
            allow_private_network=True,
        )
        await directory.create("rosa")
        worker = WebhookWorker(
            database, resolver=resolver, trust=ssl.create_default_context(cafile=str(cert))
        )
        assert await worker.run_once() == 2
    finally:
        server.close()
    assert [r.path for r in receiver.requests] == ["/a"]
    [refused] = await deliveries(client, owner, impostor["id"])
    assert refused["status"] == "queued"
    assert "certificate" in refused["last_error"].lower(), refused["last_error"]
    [done] = await deliveries(client, owner, genuine["id"])
    assert done["status"] == "delivered"


async def test_the_tls_trust_store_is_loaded_once_per_worker_not_per_round(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Loading the CAs takes tens of milliseconds of the event loop's time.
    worker = WebhookWorker(database)
    loaded: list[object] = []
    load = ssl.SSLContext.load_verify_locations

    def counted(context: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loaded.append(args or kwargs)
        load(context, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    await register(client, owner, url=receiver.url(), allow_private_network=True)
    await directory.create("rosa")
    await directory.create("sam")
    assert await worker.run_once() == 2
    assert len(receiver.requests) == 2 and loaded == []


async def test_name_lookups_that_hang_do_not_hold_up_password_hashing(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # getaddrinfo ran on the event loop's default thread pool, which argon2 uses too: lookups
    # that hang (a timeout stops the waiting, not the thread) took every thread of it.
    hanging = threading.Event()
    looked_up: list[str] = []

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        looked_up.append(host)
        hanging.wait(30)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    system = Actor.system("test")
    async with database.transaction() as session:
        for n in range(40):  # more than any default pool has threads (at most 32)
            await create_webhook(
                session,
                actor=system,
                data=WebhookCreate(url=f"https://hook-{n}.example/", events=["user.created"]),
            )
        await create_user(
            session,
            actor=system,
            data=UserCreate(name="Rosa", username="rosa", email="rosa@example.com"),
        )
    try:
        worker = WebhookWorker(database, batch=40, request_timeout=0.5)
        assert await worker.run_once() == 40
        assert looked_up  # the lookups started, and their threads are stuck in them
        checked = await asyncio.wait_for(
            database.services.passwords.verify(None, "whatever"), timeout=10
        )
        assert checked is False and not hanging.is_set()
    finally:
        hanging.set()


async def test_name_lookups_in_flight_are_capped_even_after_their_callers_gave_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hanging = threading.Event()

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        hanging.wait(30)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    resolver = SystemResolver(threads=2, in_flight=2)
    try:
        for host in ("a.example", "b.example"):  # each hangs in a thread
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(resolver(host, 443), timeout=0.1)
        with pytest.raises(OSError, match="2 name lookups are in flight already"):
            await resolver("c.example", 443)
    finally:
        hanging.set()
    for _ in range(100):  # both lookups end: room again
        try:
            assert await resolver("d.example", 443) == ["192.0.2.1"]
            break
        except OSError:
            await asyncio.sleep(0.05)
    else:
        pytest.fail("the resolver never had room again")


@postgres_only
async def test_an_endpoint_deleted_while_a_change_queues_its_event_waits_and_takes_it_along(
    database: Database, receiver: Receiver
) -> None:
    # The change read the active endpoints unlocked; the endpoint was deleted and committed
    # before the change inserted its delivery, and the change failed on the foreign key.
    system = Actor.system("test")
    async with database.transaction() as session:
        registered = await create_webhook(
            session,
            actor=system,
            data=WebhookCreate(
                url=receiver.url(), events=["user.created"], allow_private_network=True
            ),
        )
        webhook_id = registered.endpoint.public_id

    async def delete() -> None:
        async with database.transaction() as session:
            await delete_webhook(session, actor=system, webhook_id=webhook_id)

    async with database.transaction() as change:
        await queue_event(
            change,
            action="user.created",
            actor=system,
            target={"type": "user", "id": "u1", "name": "rosa"},
            changes={},
        )
        deleting = asyncio.create_task(delete())
        await asyncio.sleep(0.5)
        assert not deleting.done()  # waits for the change that read the endpoint
    await asyncio.wait_for(deleting, timeout=10)
    assert await _webhook_rows(database) == 0
    async with database.reader() as session:
        assert await session.scalar(text("SELECT count(*) FROM webhook_deliveries")) == 0


@postgres_only
async def test_a_change_made_while_an_endpoint_is_being_deleted_waits_and_queues_nothing_for_it(
    database: Database, receiver: Receiver
) -> None:
    system = Actor.system("test")
    async with database.transaction() as session:
        registered = await create_webhook(
            session,
            actor=system,
            data=WebhookCreate(
                url=receiver.url(), events=["user.created"], allow_private_network=True
            ),
        )

    async def change() -> None:
        async with database.transaction() as session:
            await queue_event(
                session,
                action="user.created",
                actor=system,
                target={"type": "user", "id": "u1", "name": "rosa"},
                changes={},
            )

    async with database.transaction() as deleting:
        await delete_webhook(deleting, actor=system, webhook_id=registered.endpoint.public_id)
        changing = asyncio.create_task(change())
        await asyncio.sleep(0.5)
        assert not changing.done()
    await asyncio.wait_for(changing, timeout=10)  # no foreign key violation
    assert await _webhook_rows(database) == 0


async def test_a_redelivered_delivery_shows_nothing_of_the_earlier_attempts(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
) -> None:
    webhook, _ = await register(client, owner, url=receiver.url(), allow_private_network=True)
    receiver.script = [Answer(200, b"first"), Answer(500, b"second")]
    await directory.create("rosa")
    worker = WebhookWorker(database)
    assert await worker.run_once() == 1
    [delivered] = await deliveries(client, owner, webhook["id"])
    assert delivered["delivered_at"] is not None
    path = f"/api/v1/webhooks/{webhook['id']}/deliveries/{delivered['id']}/redeliver"
    assert (await client.post(path, headers=owner.headers)).status_code == 202
    [queued] = await deliveries(client, owner, webhook["id"])
    assert (queued["status"], queued["delivered_at"], queued["last_error"]) == (
        "queued",
        None,
        None,
    )
    assert await worker.run_once() == 1  # fails this time: not shown as delivered before
    [failed] = await deliveries(client, owner, webhook["id"])
    assert (failed["status"], failed["delivered_at"]) == ("queued", None)
    assert failed["last_error"] == "the receiver answered 500"


async def test_a_worker_that_stalled_past_its_lease_cannot_overwrite_a_newer_outcome(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
    clock: ShiftableClock,
) -> None:
    webhook, _ = await register(client, owner, url=receiver.url(), allow_private_network=True)
    await directory.create("rosa")
    async with database.transaction() as session:
        [row] = await claim_due(session, kind_prefix="webhook.", batch=1, now=clock.now())
        stalled_claim, row_id = row.claimed_until, row.id
    clock.advance(LEASE + timedelta(minutes=1))
    assert await WebhookWorker(database).run_once() == 1  # another worker delivers it
    async with database.transaction() as session:  # the stalled worker wakes up
        released = await release(
            session, row_id, claim=stalled_claim, status="queued", last_error="timed out"
        )
    assert released is False
    [done] = await deliveries(client, owner, webhook["id"])
    assert (done["status"], done["last_error"]) == ("delivered", None)


async def test_an_outbox_row_without_its_delivery_fails_and_is_not_left_claimed(
    database: Database, clock: ShiftableClock
) -> None:
    async with database.transaction() as session:
        orphan = OutboxMessage(
            kind="webhook.delivery",
            payload={},
            status="queued",
            attempts=0,
            created_at=clock.now(),
            next_attempt_at=clock.now(),
        )
        session.add(orphan)
    assert await WebhookWorker(database).run_once() == 0
    async with database.reader() as session:
        row = await session.get(OutboxMessage, orphan.id)
        assert row is not None
        assert (row.status, row.claimed_until) == ("failed", None)
        assert row.last_error == "no delivery belongs to this outbox row"


async def test_a_slow_receiver_does_not_hold_up_email(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
) -> None:
    # Mail and webhooks took turns in one loop: an email queued while a receiver was slow
    # waited for its answer.
    webhook, _ = await register(client, owner, url=receiver.url(), allow_private_network=True)
    receiver.script = [Answer(delay=4.0)]
    user = await directory.create("rosa")
    stop = asyncio.Event()
    working = asyncio.create_task(OutboxWorker(database).run_until(stop, idle_seconds=0.05))
    try:
        for _ in range(100):
            if receiver.requests:
                break
            await asyncio.sleep(0.05)
        assert receiver.requests  # the receiver has the event and takes its time to answer
        reset = await client.post(
            f"/api/v1/users/{user['id']}/password/reset",
            json={"mode": "random"},
            headers=owner.headers,
        )
        assert reset.status_code == 200, reset.text
        emailed = None
        for _ in range(60):
            async with database.reader() as session:
                emailed = await session.scalar(
                    select(OutboxMessage.status).where(OutboxMessage.kind.startswith("email."))
                )
            if emailed != "queued":
                break
            await asyncio.sleep(0.05)
        [in_flight] = await deliveries(client, owner, webhook["id"])
        assert (emailed, in_flight["status"]) == ("captured", "queued")
    finally:
        stop.set()
        await working


@postgres_only
async def test_an_answer_the_database_refuses_is_dropped_and_the_attempt_still_counts(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Whatever makes the answer unstorable (here a NUL, let through on purpose), the attempt
    # is recorded without it rather than left claimed and sent again.
    monkeypatch.setattr(webhook_worker, "_storable", lambda text: text)
    webhook, _ = await register(client, owner, url=receiver.url(), allow_private_network=True)
    receiver.script = [Answer(200, b"OK\x00")]
    await directory.create("rosa")
    assert await WebhookWorker(database).run_once() == 1
    [done] = await deliveries(client, owner, webhook["id"])
    assert (done["status"], done["attempts"], done["response_body"]) == ("delivered", 1, None)
    assert done["last_error"] == "the receiver's answer could not be recorded: DataError"


async def test_a_delivery_that_cannot_be_recorded_does_not_abandon_the_rest_of_the_batch(
    client: httpx.AsyncClient,
    database: Database,
    owner: Account,
    directory: Directory,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken, _ = await register(
        client, owner, url=receiver.url("/broken"), allow_private_network=True
    )
    fine, _ = await register(client, owner, url=receiver.url("/fine"), allow_private_network=True)
    await directory.create("rosa")
    [unrecordable] = await deliveries(client, owner, broken["id"])
    record = WebhookWorker._record

    async def failing(worker: WebhookWorker, row: Any, delivery_id: int, *args: Any) -> None:
        if delivery_id == unrecordable["id"]:
            await asyncio.sleep(0)  # the other delivery is under way too
            raise ConnectionError("the database went away")
        await record(worker, row, delivery_id, *args)

    monkeypatch.setattr(WebhookWorker, "_record", failing)
    assert await WebhookWorker(database).run_once() == 2
    assert sorted(r.path for r in receiver.requests) == ["/broken", "/fine"]
    [done] = await deliveries(client, owner, fine["id"])
    assert done["status"] == "delivered"
    [left] = await deliveries(client, owner, broken["id"])
    assert left["status"] == "queued"  # claimed: retried when the lease runs out
