"""The webhook worker: POSTs queued events to their endpoints, signed, retrying with backoff.

Rows are claimed and released through userdesk.queue, as emails are. Each request goes to
an address checked against the SSRF rule (security/addresses.py) and pinned: the URL's host
is resolved once, every address checked, and the connection made to the checked address
with the original Host header and TLS server name, so DNS cannot swap in another address
between the check and the connection; each attempt has a connection of its own, so TLS
checks every host's certificate. Redirects are never followed; timeouts are short. A 2xx
answer delivers the event; anything else, an unexpected error included, is retried until
MAX_ATTEMPTS, then failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import select, update

from userdesk import __version__
from userdesk.actions.webhook_events import PING
from userdesk.db import Database
from userdesk.models import OutboxMessage, WebhookDelivery, WebhookEndpoint
from userdesk.queue import backoff, claim_due, release
from userdesk.security.addresses import (
    AddressRefused,
    Resolver,
    SystemResolver,
    ascii_host,
    checked_address,
)
from userdesk.security.sealing import SealingError

log = logging.getLogger("userdesk.webhooks")

USER_AGENT = f"userdesk-webhooks/{__version__}"
# With the backoff's 30 s doubling to at most 2 h: the last try about 4 h after the first.
MAX_ATTEMPTS = 10
CONNECT_TIMEOUT = 3.0
REQUEST_TIMEOUT = 10.0
RESPONSE_KEPT = 1024  # bytes of the receiver's answer kept in the log


class Status:
    QUEUED = "queued"
    DELIVERED = "delivered"
    FAILED = "failed"


def signature(secret: str, timestamp: str, body: str) -> str:
    """The X-Userdesk-Signature value: HMAC-SHA256 of "<timestamp>.<body>", hex."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signed_headers(
    *, secret: str, event_id: str, event_type: str, timestamp: str, body: str
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Userdesk-Event": event_type,
        "X-Userdesk-Event-Id": event_id,
        "X-Userdesk-Timestamp": timestamp,
        "X-Userdesk-Signature": signature(secret, timestamp, body),
    }


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: the receiver's status and the start of its answer, or why
    there was none."""

    status: int | None
    body: str | None
    error: str | None
    duration_ms: int
    # No retry can help (the endpoint was paused): failed at once.
    final: bool = False

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Claimed:
    row: OutboxMessage
    delivery: WebhookDelivery
    endpoint: WebhookEndpoint


class WebhookWorker:
    def __init__(
        self,
        database: Database,
        *,
        batch: int = 20,
        resolver: Resolver | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
        trust: ssl.SSLContext | None = None,
    ) -> None:
        """`trust` verifies receivers' TLS certificates (default: httpx's, the certifi CAs)."""
        self.database = database
        # Built once: loading the CAs costs tens of milliseconds of the event loop's time.
        # What verify=True with trust_env=False gave each client (SSL_CERT_FILE is ignored).
        self.trust = trust or httpx.create_ssl_context(trust_env=False)
        self.batch = batch
        # Owned by the worker, so its lookups never take threads the server's other work needs.
        self.resolver = resolver or SystemResolver()
        self.timeout = httpx.Timeout(request_timeout, connect=connect_timeout)
        self.request_timeout = request_timeout

    async def _claim(self) -> list[Claimed]:
        now = self.database.services.clock.now()
        async with self.database.transaction() as session:
            rows = await claim_due(session, kind_prefix="webhook.", batch=self.batch, now=now)
            if not rows:
                return []
            found = await session.execute(
                select(WebhookDelivery, WebhookEndpoint)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.outbox_id.in_([r.id for r in rows]))
            )
            by_row = {d.outbox_id: (d, e) for d, e in found}
            claimed = []
            for row in rows:
                if row.id not in by_row:  # no log row: nothing to send, and no way to show it
                    row.status = Status.FAILED
                    row.last_error = "no delivery belongs to this outbox row"
                    row.claimed_until = None
                    continue
                claimed.append(Claimed(row, *by_row[row.id]))
            await session.flush()  # before the rows leave the session, or these changes go too
            session.expunge_all()
        return claimed

    async def run_once(self) -> int:
        """Deliver one batch of due events, concurrently; returns how many were handled."""
        claimed = await self._claim()
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._deliver(c) for c in claimed), return_exceptions=True)
        # One delivery's failure (its outcome could not be recorded, the database went away)
        # must not abandon the others: its row stays claimed and is retried when the lease
        # runs out.
        for claimed_one, result in zip(claimed, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "webhook delivery %s: could not be recorded",
                    claimed_one.delivery.id,
                    exc_info=result,
                )
        return len(claimed)

    async def _deliver(self, claimed: Claimed) -> None:
        row, delivery, endpoint = claimed.row, claimed.delivery, claimed.endpoint
        now = self.database.services.clock.now()
        if not endpoint.active and delivery.event_type != PING:
            outcome = Outcome(None, None, "the endpoint is inactive", 0, final=True)
        else:
            try:
                secret = self.database.services.sealer.open(endpoint.secret)
            except SealingError as exc:
                log.error("webhook %s: cannot open the signing secret: %s", endpoint.public_id, exc)
                outcome = Outcome(None, None, f"cannot open the signing secret: {exc}", 0)
            else:
                timestamp = str(int(now.timestamp()))
                headers = signed_headers(
                    secret=secret,
                    event_id=delivery.event_id,
                    event_type=delivery.event_type,
                    timestamp=timestamp,
                    body=delivery.body,
                )
                outcome = await self._send(endpoint, delivery.body, headers)
        attempts = row.attempts + 1
        error = _storable(outcome.error) if outcome.error else None
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        if outcome.delivered:
            values.update(status=Status.DELIVERED, sent_at=self.database.services.clock.now())
        else:
            failed = attempts >= MAX_ATTEMPTS or outcome.final
            values.update(
                status=Status.FAILED if failed else Status.QUEUED,
                next_attempt_at=now + backoff(attempts),
                last_error=error or f"the receiver answered {outcome.status}",
            )
            log.warning(
                "webhook %s, event %s: attempt %d failed%s: %s",
                endpoint.public_id,
                delivery.event_id,
                attempts,
                " for the last time" if failed else "",
                values["last_error"],
            )
        answer = {
            "last_attempt_at": now,
            "response_status": outcome.status,
            "response_body": outcome.body,
            "duration_ms": outcome.duration_ms,
        }
        try:
            await self._record(row, delivery.id, values, answer)
        except Exception as exc:
            # The attempt happened: it must count, or the row is sent again at every lease's
            # end, forever. Record it without the receiver's answer, which may be what failed.
            log.exception("webhook delivery %s: cannot record the answer", delivery.id)
            unrecorded = f"the receiver's answer could not be recorded: {type(exc).__name__}"
            values["last_error"] = "; ".join(filter(None, [values["last_error"], unrecorded]))
            await self._record(row, delivery.id, values, {**answer, "response_body": None})

    async def _record(
        self,
        row: OutboxMessage,
        delivery_id: int,
        values: dict[str, Any],
        answer: dict[str, Any],
    ) -> None:
        async with self.database.transaction() as session:
            if not await release(session, row.id, claim=row.claimed_until, **values):
                log.warning(
                    "webhook delivery %s was claimed again meanwhile; this outcome is dropped",
                    delivery_id,
                )
                return
            await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**answer)
            )

    async def _send(self, endpoint: WebhookEndpoint, body: str, headers: dict[str, str]) -> Outcome:
        parts = urlsplit(endpoint.url)
        port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
        started = time.monotonic()

        def took() -> int:
            return round((time.monotonic() - started) * 1000)

        try:
            # The whole attempt, the name's resolution included, within the request timeout.
            async with asyncio.timeout(self.request_timeout):
                host = ascii_host(parts.hostname or "")
                address = await checked_address(
                    host,
                    port,
                    allow_private_network=endpoint.allow_private_network,
                    resolver=self.resolver,
                )
                pinned = f"[{address}]" if address.version == 6 else str(address)
                target = urlunsplit(
                    (parts.scheme, f"{pinned}:{port}", parts.path or "/", parts.query, "")
                )
                # A client, so a connection, of its own: connections are pooled by the pinned
                # address, and a TLS connection kept for one host would carry the next host
                # on that address without checking the certificate for its name.
                async with httpx.AsyncClient(
                    timeout=self.timeout, follow_redirects=False, trust_env=False, verify=self.trust
                ) as client:
                    request = client.build_request(
                        "POST",
                        target,
                        content=body.encode(),
                        headers={**headers, "Host": _host_header(host, parts.port)},
                        extensions={"sni_hostname": host} if parts.scheme == "https" else {},
                    )
                    response = await client.send(request, stream=True)
                    try:
                        kept = await _start_of(response)
                    finally:
                        await response.aclose()
        except AddressRefused as exc:
            return Outcome(None, None, str(exc), took())
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(None, None, f"timed out after {took() / 1000:.1f} s", took())
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            return Outcome(None, None, f"{type(exc).__name__}: {exc}"[:1000], took())
        except Exception as exc:
            # Whatever else goes wrong (a host that cannot be encoded, a bug) is one failed
            # attempt, retried with backoff and finally failed, never a row stuck claimed.
            log.exception("webhook %s: attempt failed unexpectedly", endpoint.public_id)
            return Outcome(None, None, f"{type(exc).__name__}: {exc}"[:1000], took())
        return Outcome(response.status_code, kept, None, took())


def _host_header(host: str, port: int | None) -> str:
    """The Host header for the URL's (ASCII) host and explicit port, if any."""
    named = f"[{host}]" if ":" in host else host
    return named if port is None else f"{named}:{port}"


def _storable(text: str) -> str:
    """Text any database keeps: PostgreSQL refuses NUL in text, and an answer may hold one."""
    return text.replace("\x00", "\ufffd")


async def _start_of(response: httpx.Response) -> str:
    """The first RESPONSE_KEPT bytes of the answer, as text; the rest is not read."""
    kept = b""
    async for chunk in response.aiter_raw():
        kept += chunk
        if len(kept) >= RESPONSE_KEPT:
            break
    return _storable(kept[:RESPONSE_KEPT].decode("utf-8", errors="replace"))
