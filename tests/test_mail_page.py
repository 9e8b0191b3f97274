"""The console's Mail page over HTTP (in process): who may read it, paging, retry, and that an
email's content is shown escaped, its HTML never inside the console page.

What a browser does with it is in tests/browser/test_mail_and_joining.py."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import Account, Directory
from userdesk.db import Database
from userdesk.models import OutboxMessage

PASSWORD = "a long and unguessable passphrase"
ORIGIN = {"origin": "http://userdesk.test"}
# A name that tries every way into the page: a tag, an attribute, a javascript: link, and an
# http link whose quote would end the attribute it is put in.
HOSTILE = '<script>alert(1)</script>javascript:alert(2)<img src=x onerror=alert(3)>https://e.test/"onclick="a'


async def sign_in(client: httpx.AsyncClient, login: str) -> str:
    """Sign in through the console's form; return the CSRF token of the Mail page."""
    answer = await client.post(
        "/login", data={"login": login, "password": PASSWORD, "next": "/mail"}, headers=ORIGIN
    )
    assert answer.status_code == 303, answer.text
    page = await client.get("/mail")
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, page.text
    return found.group(1)


@pytest.fixture
async def admin(directory: Directory) -> Account:
    return await directory.account("ada", roles=["admin"], password=PASSWORD)


async def _email_ids(database: Database) -> list[int]:
    async with database.reader() as session:
        return list(await session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))


async def test_an_email_is_shown_escaped_with_only_http_links_clickable(
    client: httpx.AsyncClient, admin: Account, directory: Directory, database: Database
) -> None:
    await directory.create("mallory", name=HOSTILE, send_welcome_email=True)
    email_id = (await _email_ids(database))[-1]
    await sign_in(client, "ada")

    listing = await client.get("/mail")
    assert listing.status_code == 200
    assert "Your " in listing.text and f'data-mail-id="{email_id}"' in listing.text

    page = await client.get(f"/mail?open={email_id}")
    assert page.status_code == 200, page.text
    body = page.text
    assert "<script>alert" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;img src=x" in body and "onerror=alert(3)&gt;" in body  # the text is wrapped
    assert 'href="javascript:' not in body.lower()
    assert "javascript:alert(2)" in body  # as text
    # The hostile http link ends at the quote, which stays text outside the attribute.
    assert (
        '<a href="https://e.test/" target="_blank" rel="noopener noreferrer">'
        "https://e.test/</a>&#34;onclick=&#34;a"
    ) in body
    assert '<a href="http://userdesk.test/login" target="_blank"' in body
    # Every tag in the message's body is one of our links.
    shown = body.split('<pre class="mail-body">', 1)[1].split("</pre>", 1)[0]
    assert set(re.findall(r"<(\w+)", shown)) == {"a"}
    assert page.headers["content-security-policy"].startswith("default-src 'none'; script-src")


async def test_the_html_version_is_never_in_the_page(
    client: httpx.AsyncClient, admin: Account, directory: Directory, database: Database
) -> None:
    await directory.create("mallory", name=HOSTILE, send_welcome_email=True)
    email_id = (await _email_ids(database))[-1]
    await sign_in(client, "ada")

    page = await client.get(f"/mail?open={email_id}&as=html")
    assert page.status_code == 200
    assert f'<iframe class="mail-html" sandbox="" src="/mail/{email_id}/html"' in page.text
    assert "onerror" not in page.text.replace("onerror=alert(3)&gt;", "")
    assert "frame-src 'self'" in page.headers["content-security-policy"]

    framed = await client.get(f"/mail/{email_id}/html")
    assert framed.status_code == 200
    policy = framed.headers["content-security-policy"]
    assert "sandbox" in policy and "script-src" not in policy and "default-src 'none'" in policy
    assert "frame-ancestors 'self'" in policy
    assert "&lt;script&gt;" in framed.text and "<script>" not in framed.text

    client.cookies.clear()
    assert (await client.get(f"/mail/{email_id}/html")).status_code == 303


async def test_only_settings_managers_read_mail(
    client: httpx.AsyncClient, directory: Directory, database: Database
) -> None:
    await directory.account("uma", roles=["user-manager"], password=PASSWORD)
    await directory.create("wes", send_welcome_email=True)
    email_id = (await _email_ids(database))[-1]
    answer = await client.post(
        "/login", data={"login": "uma", "password": PASSWORD, "next": "/"}, headers=ORIGIN
    )
    assert answer.status_code == 303
    for path in ("/mail", f"/mail?open={email_id}", f"/mail/{email_id}", f"/mail/{email_id}/html"):
        refused = await client.get(path)
        assert refused.status_code == 403, path
        assert "Not allowed" in refused.text and "wes@example.com" not in refused.text


async def test_retry_and_paging(
    client: httpx.AsyncClient, admin: Account, directory: Directory, database: Database
) -> None:
    for n in range(27):
        await directory.create(f"user{n:02}", send_welcome_email=True)
    ids = await _email_ids(database)
    csrf = await sign_in(client, "ada")

    first = await client.get("/mail")
    assert first.text.count("data-mail-id=") == 25
    assert f'data-mail-id="{ids[-1]}"' in first.text
    older = re.search(r'href="(/mail\?cursor=[^"]+)"[^>]*rel="next"', first.text)
    assert older, first.text
    second = await client.get(older.group(1).replace("&amp;", "&"))
    assert second.text.count("data-mail-id=") == len(ids) - 25
    assert f'data-mail-id="{ids[0]}"' in second.text and "Newest" in second.text

    # Not captured yet (no worker runs in process): queued emails are not retried.
    queued = await client.post(f"/mail/{ids[0]}/retry", data={"csrf_token": csrf}, headers=ORIGIN)
    assert queued.status_code == 409 and "only failed or captured" in queued.text
    async with database.transaction() as session:
        row = await session.get(OutboxMessage, ids[0])
        assert row is not None
        row.status, row.attempts, row.last_error = "failed", 8, "550 no such mailbox"
    shown = await client.get(f"/mail/{ids[0]}")
    assert "550 no such mailbox" in shown.text and ">Retry</button>" in shown.text

    forged = await client.post(f"/mail/{ids[0]}/retry", headers=ORIGIN)
    assert forged.status_code == 403
    retried = await client.post(
        f"/mail/{ids[0]}/retry",
        headers={**ORIGIN, "HX-Request": "true", "X-CSRF-Token": csrf},
    )
    assert retried.status_code == 200, retried.text
    assert "is queued again" in retried.text and "Email is not configured" in retried.text
    assert 'id="mail-status">queued<' in retried.text
    async with database.reader() as session:
        row = await session.get(OutboxMessage, ids[0])
        assert row is not None and row.status == "queued" and row.attempts == 0

    assert (await client.get("/mail/999999")).status_code == 404
    assert (await client.get("/mail?cursor=nonsense")).status_code == 422


async def test_no_mail_yet(client: httpx.AsyncClient, admin: Account) -> None:
    await sign_in(client, "ada")
    page = await client.get("/mail")
    assert "No emails yet." in page.text and "Open an email to read it." in page.text
    assert 'id="mail-banner"' in page.text
