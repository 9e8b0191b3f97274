"""The Django admin peer of the benchmark serves the benchmark population, for real.

On SQLite and on PostgreSQL: load 300 people with bench.peers.django_admin.load, start the
peer's gunicorn, sign in through the admin's login form, GET every request the harness
times and check the counts and rows the changelist shows against the people themselves.

The PostgreSQL half needs USERDESK_TEST_POSTGRES_URL, and fails without it: a benchmark
peer that was only ever tried on SQLite is not tried.
"""

from __future__ import annotations

import html
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from bench.peers import django_admin
from bench.population import Person, people
from tests.processes import free_port

USERS = 300
POSTGRES_URL = os.environ.get("USERDESK_TEST_POSTGRES_URL")
EVERYONE = list(people(USERS, seed=1))
ADMIN_EMAIL = f"{django_admin.ADMIN_USERNAME}@example.com"
# The changelist's own count, under the page links: "301 users".
SHOWN_COUNT = re.compile(r"^(\d+) users?$", re.MULTILINE)
EMAIL_CELL = re.compile(r'<td class="field-email">([^<]*)</td>')


def _postgres_url(name: str) -> str:
    assert POSTGRES_URL
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit(parts._replace(scheme="postgresql", path=f"/{name}"))


def _drop(url: str) -> None:
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    name = parts.path.lstrip("/")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def peer_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """A database URL for the peer; None when PostgreSQL is wanted but not configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'peer.db'}"
        return
    if not POSTGRES_URL:
        yield None
        return
    url = _postgres_url(f"peer_test_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    try:
        yield url
    finally:
        _drop(url)


def _matcher(url: str) -> Callable[[str, str], bool]:
    """`term in text` as the admin's icontains decides it on this database: SQLite's LIKE
    folds ASCII letters only; PostgreSQL compares UPPER() of both, every letter it can
    upper-case one for one (so "ı" matches "I", and "yilmaz" finds "Yılmaz")."""
    if url.startswith("sqlite:"):

        def ascii_lower(text: str) -> str:
            return "".join(c.lower() if c.isascii() else c for c in text)

        return lambda term, text: ascii_lower(term) in ascii_lower(text)

    def upper(text: str) -> str:
        return "".join(c.upper() if len(c.upper()) == 1 else c for c in text)

    return lambda term, text: upper(term) in upper(text)


def _fields(person: Person) -> tuple[str, str, str, str]:
    first, _, last = person.name.partition(" ")
    return person.username, first, last, person.email


def _matches(url: str, term: str) -> int:
    contains = _matcher(url)
    found = sum(any(contains(term, f) for f in _fields(p)) for p in EVERYONE)
    admin = (django_admin.ADMIN_USERNAME, "", "", ADMIN_EMAIL)
    return found + any(contains(term, f) for f in admin)


def _shown(page: httpx.Response) -> tuple[int, list[str]]:
    """The count the changelist shows, and the email column of its rows."""
    assert page.status_code == 200, page.text[:2000]
    counts = SHOWN_COUNT.findall(page.text)
    assert len(counts) == 1, "one 'N users' line under the page links"
    return int(counts[0]), [html.unescape(e) for e in EMAIL_CELL.findall(page.text)]


def _terms() -> tuple[str, str, str]:
    """A common surname, a surname one person has, and two letters, from the 300."""
    surnames: dict[str, int] = {}
    for person in EVERYONE:
        surname = person.name.partition(" ")[2]
        surnames[surname] = surnames.get(surname, 0) + 1
    common = max(surnames, key=lambda s: surnames[s])
    rare = next(s for s, n in surnames.items() if n == 1 and len(s) > 6 and s.isascii())
    return common.lower(), rare.upper(), "ma"


def test_requests_name_the_changelist_paths() -> None:
    paths = django_admin.requests(1_000_000, rare="avsen12", common="smith", short="zo")
    assert paths == {
        "first_page": "/admin/auth/user/",
        "search_common": "/admin/auth/user/?q=smith",
        "search_rare": "/admin/auth/user/?q=avsen12",
        "search_short": "/admin/auth/user/?q=zo",
        "role_and_status": "/admin/auth/user/?is_active__exact=1&is_staff__exact=1",
        "inactive": "/admin/auth/user/?is_active__exact=0",
        "sort_email_desc": "/admin/auth/user/?o=-2",
        "page_101": "/admin/auth/user/?p=101",
        # 1,000,001 rows with the superuser: 10,001 pages of 100.
        "last_page": "/admin/auth/user/?p=10001",
        "user_info": "/admin/auth/user/500000/change/",
    }
    assert django_admin.last_page(300) == 4 and django_admin.last_page(299) == 3


def test_server_environment_makes_sqlite_paths_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = django_admin.server_environment("sqlite:///rel/peer.db")
    assert env["PEER_DATABASE_URL"] == f"sqlite:///{tmp_path.resolve() / 'rel' / 'peer.db'}"
    assert env["DJANGO_SETTINGS_MODULE"] == "bench.peers.django_admin.settings"
    root = Path(django_admin.__file__).resolve().parents[3]
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(root)
    pg = "postgresql://postgres@127.0.0.1:5432/peer_x"
    assert django_admin.server_environment(pg)["PEER_DATABASE_URL"] == pg


def test_peer_serves_the_population(peer_url: str | None, tmp_path: Path) -> None:
    if peer_url is None:
        pytest.fail("USERDESK_TEST_POSTGRES_URL is not set: the PostgreSQL peer is untested")
    django_admin.load(peer_url, USERS)
    port = free_port()
    out, err = tmp_path / "gunicorn.out", tmp_path / "gunicorn.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        server = django_admin.start_server(peer_url, port, stdout=stdout, stderr=stderr)
    try:
        django_admin.wait_until_up(server, port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            with pytest.raises(django_admin.SignInError, match="wrong username or password"):
                django_admin.sign_in(client, password="not the password")
            django_admin.sign_in(client)
            _check_requests(client, peer_url)
    except BaseException:
        print(err.read_text(errors="replace"))
        raise
    finally:
        django_admin.stop_server(server)
    assert server.returncode == 0, err.read_text(errors="replace")


def _check_requests(client: httpx.Client, url: str) -> None:
    common, rare, short = _terms()
    paths = django_admin.requests(USERS, rare=rare, common=common, short=short)
    total = USERS + 1  # and the superuser
    emails = sorted([p.email for p in EVERYONE] + [ADMIN_EMAIL])

    count, shown = _shown(client.get(paths["first_page"]))
    assert count == total and shown == emails[:100]  # ordering = ("email",)

    for name, term in (("search_common", common), ("search_rare", rare), ("search_short", short)):
        count, shown = _shown(client.get(paths[name]))
        expected = _matches(url, term)
        assert count == expected, f"{name} {term!r}: shows {count}, {expected} match"
        assert len(shown) == min(expected, 100)
    assert _matches(url, common) >= 10 and _matches(url, rare) == 1

    staff_active = sum(
        p.role in ("admin", "user-manager") and p.status.value == "active" for p in EVERYONE
    )
    count, _ = _shown(client.get(paths["role_and_status"]))
    assert count == staff_active + 1  # benchadmin is active staff
    count, _ = _shown(client.get(paths["inactive"]))
    assert count == sum(p.status.value != "active" for p in EVERYONE) > 0

    count, shown = _shown(client.get(paths["sort_email_desc"]))
    assert count == total and shown == emails[::-1][:100]

    # `p` is 1-based: p=1 is the first page, p=4 the last of 301 rows (one row), and p=0 or
    # a page past the end redirect to ?e=1 (page_101 at 300 users is one of those).
    assert _shown(client.get(django_admin.page_path(1)))[1] == emails[:100]
    assert _shown(client.get(django_admin.page_path(2)))[1] == emails[100:200]
    assert paths["last_page"] == django_admin.page_path(4)
    assert _shown(client.get(paths["last_page"])) == (total, emails[300:])
    for beyond in (django_admin.page_path(0), django_admin.page_path(5), paths["page_101"]):
        answer = client.get(beyond)
        assert answer.status_code == 302 and answer.headers["location"].endswith("?e=1")

    middle = EVERYONE[USERS // 2 - 1]  # pk USERS // 2: the load numbers people from 1
    change = client.get(paths["user_info"])
    assert change.status_code == 200, change.text[:2000]
    assert f'value="{html.escape(middle.username)}"' in change.text
    assert f'value="{html.escape(middle.email)}"' in change.text
