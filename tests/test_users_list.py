"""GET /api/v1/users, the Users page: search, tabs and counts, sorting, keyset pagination,
a fixed number of queries per page, and who may read it.

Expected results are computed here in Python from the users' own fields, never taken from
another answer of the same endpoint, so a wrong filter, order or count shows up as a diff.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text, update

from tests.conftest import Account, Directory, statements
from userdesk.actions.context import Actor
from userdesk.actions.inputs import UserCreate
from userdesk.actions.users import activate_user, create_user, deactivate_user
from userdesk.db import Database
from userdesk.models import User, UserType

URL = "/api/v1/users"
SYSTEM = Actor.system("test")
SORT_FIELDS = ("name", "username", "email", "status", "created_at", "last_login_at")
ALL_SORTS = tuple(s for f in SORT_FIELDS for s in (f, f"-{f}"))
STATUSES = ("pending", "active", "deactivated")
EPOCH = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


# --- helpers ---------------------------------------------------------------------------------


def folded(text: str) -> str:
    """Case-insensitive comparison form: NFC, Unicode case folding, NFC again."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


@dataclass
class Spec:
    """A user to seed. `status` is reached the way the product reaches it: bots start active;
    a person who has signed in (last_login_at set) and is deactivated then activated is active."""

    name: str
    username: str
    email: str | None = None
    roles: list[str] = field(default_factory=lambda: ["user"])
    bot: bool = False
    status: str = "pending"
    last_login: timedelta | None = None


async def seed(database: Database, specs: list[Spec]) -> dict[str, str]:
    """Create every user in one transaction through the action layer; username -> public id."""
    ids: dict[str, str] = {}
    async with database.transaction() as session:
        for spec in specs:
            user = await create_user(
                session,
                actor=SYSTEM,
                data=UserCreate(
                    name=spec.name,
                    username=spec.username,
                    email=spec.email or f"{spec.username}@example.com",
                    roles=spec.roles,
                    type=UserType.BOT if spec.bot else UserType.HUMAN,
                ),
            )
            if spec.last_login is not None:
                user.last_login_at = EPOCH + spec.last_login
            if spec.status == "active" and not spec.bot:
                assert spec.last_login is not None, "an active person has signed in"
                await deactivate_user(session, actor=SYSTEM, user_id=user.public_id)
                await activate_user(session, actor=SYSTEM, user_id=user.public_id)
            elif spec.status == "deactivated":
                await deactivate_user(session, actor=SYSTEM, user_id=user.public_id)
            assert user.status.value == spec.status, spec
            ids[spec.username] = user.public_id
    return ids


async def internal_ids(database: Database) -> dict[str, int]:
    """public id -> row id: the tiebreak of every sort, which the API does not show."""
    async with database.reader() as session:
        return {
            public_id: row_id
            for public_id, row_id in await session.execute(select(User.public_id, User.id))
        }


async def get_page(client: httpx.AsyncClient, account: Account, **params: Any) -> dict[str, Any]:
    response = await client.get(URL, params=params, headers=account.headers)
    assert response.status_code == 200, (params, response.text)
    return response.json()


async def everyone(client: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    page = await get_page(client, account, limit=500)
    assert page["next_cursor"] is None
    return page["items"]


def error_fields(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json")
    return {error["field"] for error in response.json()["errors"]}


def sort_value(user: dict[str, Any], sort_field: str) -> Any:
    value = user[sort_field]
    if sort_field == "name":
        # Case-folded with accents set aside: Émile files beside Emma.
        decomposed = unicodedata.normalize("NFKD", folded(value))
        return "".join(c for c in decomposed if not unicodedata.combining(c))
    if sort_field == "username":
        return folded(value)
    if sort_field == "email":
        return value.lower()
    if sort_field == "last_login_at" and value is None:
        return NEVER  # never signed in sorts as the oldest sign-in
    if sort_field in ("created_at", "last_login_at"):
        return datetime.fromisoformat(value)
    return value


def expected_order(users: list[dict[str, Any]], sort: str, row_ids: dict[str, int]) -> list[str]:
    """Public ids in the order `sort` must give: by value, ties by row id in the same
    direction; by last_login_at, those who never signed in come first ascending, last
    descending."""
    descending = sort.startswith("-")
    sort_field = sort.removeprefix("-")
    ordered = sorted(
        users, key=lambda u: (sort_value(u, sort_field), row_ids[u["id"]]), reverse=descending
    )
    return [u["id"] for u in ordered]


def matches(user: dict[str, Any], q: str) -> bool:
    needle = folded(q.strip())
    return any(needle in folded(user[f]) for f in ("name", "username", "email"))


def select_users(
    users: list[dict[str, Any]],
    *,
    status: str | None = None,
    q: str | None = None,
    role: str | None = None,
) -> list[dict[str, Any]]:
    return [
        u
        for u in users
        if (status is None or u["status"] == status)
        and (not q or matches(u, q))
        and (role is None or role in u["roles"])
    ]


def tab_counts(users: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"all": len(users)} | {s: 0 for s in STATUSES}
    for user in users:
        counts[user["status"]] += 1
    return counts


async def walk(
    client: httpx.AsyncClient,
    account: Account,
    limits: Iterator[int],
    *,
    start: str | None = None,
    **params: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, int]]]:
    """Follow next_cursor (from `start`, or the first page) to the end; every page's items
    and counts."""
    items: list[dict[str, Any]] = []
    counts: list[dict[str, int]] = []
    cursor = start
    for _ in range(1000):
        limit = next(limits)
        page = await get_page(
            client, account, **params, limit=limit, **({"cursor": cursor} if cursor else {})
        )
        assert len(page["items"]) <= limit, params
        if page["next_cursor"] is not None:
            # limit + 1 rows were there, so the page is full and a next page is not empty.
            assert len(page["items"]) == limit, params
        elif cursor is not None:
            assert page["items"], ("a cursor was handed out for an empty page", params)
        items += page["items"]
        counts.append(page["counts"])
        cursor = page["next_cursor"]
        if cursor is None:
            ids = [u["id"] for u in items]
            assert len(ids) == len(set(ids)), ("duplicates in the walk", params)
            return items, counts
    raise AssertionError(f"the walk did not end: {params}")


def cursor_payload(cursor: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def cursor_text(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        return cursor


def make_cursor(payload: Any) -> str:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# The directory most tests read: ties on every sort key, mixed case and non-ASCII names,
# LIKE wildcards and a backslash in names, every status, bots, several roles per user.
POPULATION = [
    Spec("Zoë Ødegård", "zoe.o", "Zoe@Example.COM", roles=["user", "guest"]),
    Spec("Hans Straße", "hans", "hans@example.org", status="active", last_login=timedelta(days=3)),
    Spec("100%_done", "pct", "pct@example.net", roles=["guest"]),
    Spec("Back\\Slash", "bslash", "bs@example.net", status="deactivated"),
    Spec(
        "Mariana Middleton",
        "mariana",
        "mm@example.com",
        roles=["user-manager", "user"],
        status="active",
        last_login=timedelta(days=1),
    ),
    Spec("Uma Under", "under_score", "uma@example.com", roles=["guest"]),
    Spec("Sid One", "sid", "someone@middomain.io"),
    Spec("Sam Lee", "sam1", status="active", last_login=timedelta(days=5)),
    Spec("Sam Lee", "sam2", roles=["guest"]),
    Spec("sam lee", "sam3", status="deactivated", last_login=timedelta(days=5)),
    Spec("SAM LEE", "sam4", status="active", last_login=timedelta(days=5)),
    Spec("Sam Lee", "sam5", roles=["admin"]),
    Spec(
        "Émile Zola", "emile", "EMILE@example.com", status="active", last_login=timedelta(hours=7)
    ),
    Spec("Ångström", "Angstrom", "a@example.com"),
    Spec("alice", "alice", "Alice.Archer@example.com", roles=["guest", "user"]),
    Spec("Alice Archer", "Archer", "archer@example.com", status="deactivated"),
    Spec(
        "ALICE ARCHER",
        "aarcher",
        "aa@example.com",
        status="active",
        last_login=timedelta(minutes=3),
    ),
    Spec("Bob", "Bob", "bob@example.com"),
    Spec(
        "bobby tables", "bobby", "BOBBY@example.org", status="active", last_login=timedelta(days=2)
    ),
    Spec("Build Bot", "builder", roles=["bot"], bot=True, status="active"),
    Spec("Deploy Bot", "deployer", roles=["bot", "guest"], bot=True, status="deactivated"),
    Spec("Zed", "zed", "zed@example.net", status="deactivated"),
    Spec("Quinn Quip", "quip", "q@example.com", status="active", last_login=timedelta(days=9)),
    Spec("Xavier", "x_avier", "xavier@example.net", roles=["user", "guest", "user-manager"]),
    Spec("Dara O'Brien", "dara", status="deactivated", last_login=timedelta(days=3)),
    Spec("Chloé Dubois", "cdubois", "cd@example.com", roles=["guest"]),
]


async def populate(database: Database) -> dict[str, str]:
    ids = await seed(database, POPULATION)
    # Three users created in the same instant: created_at ties broken by row id.
    async with database.transaction() as session:
        await session.execute(
            update(User)
            .where(User.public_id.in_([ids["sam2"], ids["pct"], ids["Bob"]]))
            .values(created_at=EPOCH)
        )
    return ids


# --- 1. search -------------------------------------------------------------------------------


SEARCHES = [
    # (q, usernames it must find) -- the complete answer, so extra hits fail too.
    ("iddle", {"mariana"}),  # middle of a name
    ("der_sc", {"under_score"}),  # middle of a username, with a literal underscore
    ("ddoma", {"sid"}),  # middle of an email
    ("ØDEG", {"zoe.o"}),
    ("ÖDEG", set()),  # Ö (O with diaeresis) is another letter than Ø (O with stroke)
    ("zoë", {"zoe.o"}),
    ("ZOE\u0308", {"zoe.o"}),  # decomposed (NFD) input is normalised
    ("ødegÅrd", {"zoe.o"}),
    ("straße", {"hans"}),
    ("STRASSE", {"hans"}),
    ("ß", {"hans"}),  # one character folding to "ss"
    ("ÉMILE", {"emile"}),
    ("OÉ D", {"cdubois"}),
    ("oe d", set()),  # accents count: no diacritic folding on either database
    ("'BRI", {"dara"}),
    ('"', set()),
    ("Å", {"Angstrom", "zoe.o"}),  # 1 character, non-ASCII: "Ångström", "Ødegård"
    ("Ø", {"zoe.o"}),
    ("zo", {"zoe.o", "emile"}),  # 2 characters: "Zoë", "Zola"
    ("Q", {"quip"}),  # 1 character, only in one user's fields
    ("0%_d", {"pct"}),  # LIKE wildcards taken literally
    ("%", {"pct"}),
    ("%_", {"pct"}),
    ("_", {"pct", "under_score", "x_avier"}),
    ("\\", {"bslash"}),
    ("k\\s", {"bslash"}),
    ("K\\SLASH", {"bslash"}),
    ("x_a", {"x_avier"}),
    ("e_a", set()),  # as a wildcard "_" would find every "exa" of example.com
    ("1%0", set()),  # as a wildcard "%" would find "100%_done"
    ("nobody-has-this", set()),
    ("  sam lee  ", {"sam1", "sam2", "sam3", "sam4", "sam5"}),  # surrounding space ignored
    ("example.org", {"hans", "bobby"}),
]


async def test_search_finds_substrings_case_insensitively_and_literally(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await populate(database)
    users = await everyone(client, owner)
    for q, expected in SEARCHES:
        # The table is the spec; this checks the Python model agrees with it before using it.
        assert {u["username"] for u in select_users(users, q=q)} == expected, q
        page = await get_page(client, owner, q=q)
        assert {u["username"] for u in page["items"]} == expected, q
        assert page["counts"] == tab_counts(select_users(users, q=q)), q


async def test_search_combines_with_status_and_role_and_counts_ignore_status(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await populate(database)
    users = await everyone(client, owner)
    cases = [
        {"q": "sam", "status": "active"},
        {"q": "sam", "status": "pending", "role": "guest"},
        {"q": "al", "status": "deactivated"},
        {"q": "alice", "role": "guest"},
        {"q": "example.com", "role": "guest", "status": "pending"},
        {"q": "e", "role": "user-manager"},
        {"q": "bot", "role": "bot", "status": "deactivated"},
        {"role": "guest", "status": "active"},
        {"role": "admin"},
        {"role": "owner"},
        {"q": "zz", "role": "guest"},
    ]
    for params in cases:
        page = await get_page(client, owner, **params)
        expected = select_users(users, **params)
        assert {u["id"] for u in page["items"]} == {u["id"] for u in expected}, params
        unfiltered_status = {k: v for k, v in params.items() if k != "status"}
        assert page["counts"] == tab_counts(select_users(users, **unfiltered_status)), params
    assert {u["username"] for u in (await get_page(client, owner, role="owner"))["items"]} == {
        "olive"
    }


async def test_search_follows_renames_and_deletions(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    """The SQLite trigram table is kept in step by triggers; a stale entry would show here."""
    user = await directory.create("wanda", name="Wanda Maximoff", email="wanda@example.com")
    await directory.create("vision", name="Vision", email="vis@example.com")
    response = await client.patch(
        f"{URL}/{user['id']}",
        json={"name": "Scarlet Witch", "email": "sw@example.net"},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    for q, expected in [
        ("maximoff", set()),
        ("ma", set()),
        ("SCARLET", {"wanda"}),
        ("t w", {"wanda"}),
        ("sw@", {"wanda"}),
        ("wanda@", set()),
        ("wanda", {"wanda"}),
        ("vision", {"vision"}),
    ]:
        found = (await get_page(client, owner, q=q))["items"]
        assert {u["username"] for u in found} == expected, q
    assert (await client.delete(f"{URL}/{user['id']}", headers=owner.headers)).status_code == 204
    for q in ("scarlet", "sc", "wanda"):
        page = await get_page(client, owner, q=q)
        assert page["items"] == [] and page["counts"]["all"] == 0, q
    blank = await get_page(client, owner, q="   ")
    assert {u["username"] for u in blank["items"]} == {"olive", "vision"}


# --- 2. tabs ---------------------------------------------------------------------------------


async def test_tabs_filter_by_status_and_count_every_status_bots_included(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    assert await get_page(client, owner, status="deactivated") == {
        "items": [],
        "next_cursor": None,
        "prev_cursor": None,
        "counts": {"all": 1, "pending": 0, "active": 1, "deactivated": 0},
        "counts_estimated": False,
        "seats": {"used": 1, "limit": None, "available": None},
    }
    made = {}
    for username in ("penny", "percy", "pia", "dora", "dex"):
        made[username] = await directory.create(username)
    for username in ("robo", "roba"):
        made[username] = await directory.create(username, type="bot")
    for username in ("dora", "dex", "roba"):
        response = await client.post(
            f"{URL}/{made[username]['id']}/deactivate", headers=owner.headers
        )
        assert response.status_code == 200, response.text

    expected_tabs = {
        "pending": {"penny", "percy", "pia"},
        "active": {"olive", "robo"},
        "deactivated": {"dora", "dex", "roba"},
    }
    expected_counts = {"all": 8, "pending": 3, "active": 2, "deactivated": 3}
    page = await get_page(client, owner)
    assert {u["username"] for u in page["items"]} == set().union(*expected_tabs.values())
    assert page["counts"] == expected_counts
    for status, usernames in expected_tabs.items():
        page = await get_page(client, owner, status=status)
        assert {u["username"] for u in page["items"]} == usernames, status
        assert all(u["status"] == status for u in page["items"])
        assert page["counts"] == expected_counts, status

    # The unfiltered counts come from counters; a search matching everyone counts rows.
    # Both must agree, also after someone is activated again and someone deleted.
    assert (await get_page(client, owner, q="@"))["counts"] == expected_counts
    response = await client.post(f"{URL}/{made['dex']['id']}/activate", headers=owner.headers)
    assert response.json()["status"] == "pending"  # never signed in
    response = await client.delete(f"{URL}/{made['robo']['id']}", headers=owner.headers)
    assert response.status_code == 204, response.text
    expected_counts = {"all": 7, "pending": 4, "active": 1, "deactivated": 2}
    assert (await get_page(client, owner))["counts"] == expected_counts
    assert (await get_page(client, owner, q="@"))["counts"] == expected_counts
    assert (await get_page(client, owner, status="pending"))["counts"] == expected_counts
    bots = await get_page(client, owner, role="bot")
    assert {u["username"] for u in bots["items"]} == {"roba"}
    assert bots["counts"] == {"all": 1, "pending": 0, "active": 0, "deactivated": 1}


# --- 3. sorting ------------------------------------------------------------------------------


async def test_every_sort_orders_like_python_with_ties_by_id_and_never_as_oldest(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await populate(database)
    row_ids = await internal_ids(database)
    users = await everyone(client, owner)
    assert len(users) == len(POPULATION) + 1
    for sort in ALL_SORTS:
        page = await get_page(client, owner, sort=sort, limit=500)
        assert [u["id"] for u in page["items"]] == expected_order(users, sort, row_ids), sort
    default = await get_page(client, owner, limit=500)
    assert [u["id"] for u in default["items"]] == expected_order(users, "name", row_ids)

    # The data really has the ties and NULLs this test is about.
    by_name = [u["username"] for u in default["items"]]
    assert by_name[by_name.index("sam1") : by_name.index("sam1") + 5] == [
        "sam1",
        "sam2",
        "sam3",
        "sam4",
        "sam5",
    ]
    by_login = [
        u["username"]
        for u in (await get_page(client, owner, sort="-last_login_at", limit=500))["items"]
    ]
    assert by_login[:4] == ["quip", "sam4", "sam3", "sam1"]
    assert by_login[-1] == "olive"  # never signed in: last, ties by id descending
    oldest_first = (await get_page(client, owner, sort="last_login_at", limit=500))["items"]
    assert oldest_first[0]["username"] == "olive"  # never signed in: first, ties by id
    signed_in = [u["username"] for u in oldest_first if u["last_login_at"]]
    assert signed_in[:3] == ["aarcher", "emile", "mariana"] and signed_in[-1] == "quip"
    assert [u["username"] for u in oldest_first][-len(signed_in) :] == signed_in
    created = [
        u["username"]
        for u in (await get_page(client, owner, sort="created_at", limit=500))["items"]
    ]
    assert created[:3] == ["pct", "sam2", "Bob"]


async def test_time_sorts_page_exactly_whatever_the_database_time_zone(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    """Cursor times must compare as instants. On a PostgreSQL server whose time zone has
    daylight saving (a common default), a cursor time that went through a zone-less timestamp
    would shift by an hour inside the repeated autumn hour and skip or repeat rows."""
    if database.dialect == "postgresql":
        async with database.engine.connect() as conn:
            name = await conn.scalar(text("SELECT current_database()"))
            await conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone TO 'Europe/Berlin'"))
            await conn.commit()
        await database.engine.dispose()  # new connections take the zone
    # 2024-10-27 00:00-02:00 UTC is 02:00-03:00 twice in Berlin.
    autumn = datetime(2024, 10, 26, 23, 45, tzinfo=UTC)
    ids = await seed(database, [Spec(f"Night {i:02d}", f"night{i:02d}") for i in range(12)])
    async with database.transaction() as session:
        for i, username in enumerate(sorted(ids)):
            at = autumn + timedelta(minutes=15 * ((i * 5) % 12))
            await session.execute(
                update(User)
                .where(User.public_id == ids[username])
                .values(created_at=at, last_login_at=at, last_login_key=at)
            )
    row_ids = await internal_ids(database)
    users = await everyone(client, owner)
    for sort in ("created_at", "-created_at", "last_login_at", "-last_login_at"):
        items, _ = await walk(client, owner, itertools.repeat(2), sort=sort)
        assert [u["id"] for u in items] == expected_order(users, sort, row_ids), sort


# --- 4. keyset pagination --------------------------------------------------------------------


WALK_FILTERS = [
    {},
    {"status": "pending"},
    {"status": "active"},
    {"q": "a"},  # 1 character: the short path on SQLite
    {"q": "ex"},  # 2 characters
    {"q": "example", "status": "pending"},  # the trigram path
    {"q": "_"},
    {"role": "guest"},
    {"role": "user", "q": "am", "status": "active"},
]


async def test_walking_the_cursor_yields_the_full_ordered_list(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await populate(database)
    row_ids = await internal_ids(database)
    users = await everyone(client, owner)
    rng = random.Random(20261128)
    for params in WALK_FILTERS:
        expected_counts = tab_counts(
            select_users(users, **{k: v for k, v in params.items() if k != "status"})
        )
        selected = select_users(users, **params)
        for sort in ALL_SORTS:
            # The limit changes from page to page: a cursor does not depend on the page size.
            limits = iter(lambda: rng.randint(2, 10), None)
            items, counts = await walk(client, owner, limits, sort=sort, **params)
            assert [u["id"] for u in items] == expected_order(selected, sort, row_ids), (
                sort,
                params,
            )
            assert all(c == expected_counts for c in counts), (sort, params)


async def test_walk_with_limit_one_and_the_last_page_exactly_full(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await populate(database)
    row_ids = await internal_ids(database)
    users = await everyone(client, owner)
    for sort in ("-last_login_at", "status"):
        items, _ = await walk(client, owner, itertools.repeat(1), sort=sort)
        assert [u["id"] for u in items] == expected_order(users, sort, row_ids)
    # The last page is exactly full and says there is nothing after it.
    size = next(d for d in range(3, len(users)) if len(users) % d == 0)
    items, counts = await walk(client, owner, itertools.repeat(size), sort="-name")
    assert len(counts) == len(users) // size and len(items) == len(users)


async def test_walk_survives_inserts_and_deletes_between_pages(
    client: httpx.AsyncClient, owner: Account, directory: Directory, database: Database
) -> None:
    await populate(database)
    row_ids = await internal_ids(database)
    for round_, sort in enumerate(
        ("name", "-name", "-last_login_at", "last_login_at", "created_at", "-status")
    ):
        first = await get_page(client, owner, sort=sort, limit=8)
        seen = first["items"]
        boundary = seen[-1]
        assert first["next_cursor"]

        # Delete the very row the cursor points at, a row already seen and one not yet
        # reached; add users landing before and after the cursor position, one tying with it.
        unseen = await get_page(client, owner, sort=sort, limit=3, cursor=first["next_cursor"])
        doomed = {boundary["id"], seen[0]["id"], unseen["items"][1]["id"]} - {owner.id}
        for user_id in doomed:
            response = await client.delete(f"{URL}/{user_id}", headers=owner.headers)
            assert response.status_code == 204, response.text
        for username, name in (
            (f"aaa.new{round_}", "Aaa New"),
            (f"zzz.new{round_}", "Zzz New"),
            (f"mid.new{round_}", boundary["name"]),
        ):
            await directory.create(username, name=name)

        rest, _ = await walk(
            client, owner, itertools.repeat(4), sort=sort, start=first["next_cursor"]
        )
        row_ids |= await internal_ids(database)
        remaining = await everyone(client, owner)
        # The deleted boundary row keeps its place in the order: exactly the remaining rows
        # after it follow, in order, and nothing seen before comes again.
        ranked = expected_order(remaining + [boundary], sort, row_ids)
        after = ranked[ranked.index(boundary["id"]) + 1 :]
        assert [u["id"] for u in rest] == after, sort
        assert not {u["id"] for u in rest} & {u["id"] for u in seen}, sort
        assert not doomed & {u["id"] for u in rest}, sort


async def test_bad_cursors_are_422_naming_cursor(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await populate(database)
    real = (await get_page(client, owner, sort="created_at", limit=2))["next_cursor"]
    payload = cursor_payload(real)
    bad = {
        "created_at": [
            "not a cursor!",
            "~~~~",
            real[:-5],
            make_cursor(b"\xff\xfe\xfd"),
            make_cursor(b"not json"),
            make_cursor([payload["v"], payload["i"]]),
            make_cursor(None),
            make_cursor({"s": "created_at", "v": payload["v"]}),
            make_cursor({**payload, "i": str(payload["i"])}),
            make_cursor({**payload, "v": 12}),
            make_cursor({**payload, "v": "yesterday"}),
            make_cursor({**payload, "v": "2024-03-01T12:00:00"}),  # no time zone
            make_cursor({**payload, "v": None}),  # created_at is never NULL
        ],
        "status": [
            make_cursor({"s": "status", "v": "bogus", "i": 1}),
            make_cursor({"s": "status", "v": ["active"], "i": 1}),
        ],
        "name": [
            make_cursor({"s": "name", "v": 5, "i": 1}),
            make_cursor({"s": "name", "v": None, "i": 1}),
            make_cursor({"s": "name", "v": "x", "i": 2**70}),
            make_cursor({"s": "name", "v": "x", "i": 1.5}),
        ],
        "last_login_at": [
            make_cursor({"s": "last_login_at", "v": "2024-13-01T00:00:00+00:00", "i": 1}),
        ],
    }
    for sort, cursors in bad.items():
        for cursor in cursors:
            response = await client.get(
                URL, params={"sort": sort, "cursor": cursor}, headers=owner.headers
            )
            assert error_fields(response) == {"cursor"}, (sort, cursor_text(cursor))


async def test_a_cursor_from_another_sort_is_422(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await populate(database)
    for issued, used in [
        ("username", "name"),
        ("name", "email"),
        ("created_at", "last_login_at"),
        ("last_login_at", "created_at"),
        ("status", "-name"),
        ("name", "-name"),  # the same column the other way round is another order
        ("-last_login_at", "last_login_at"),
        ("-created_at", "created_at"),
    ]:
        cursor = (await get_page(client, owner, sort=issued, limit=3))["next_cursor"]
        assert cursor
        response = await client.get(
            URL, params={"sort": used, "cursor": cursor}, headers=owner.headers
        )
        assert error_fields(response) == {"cursor"}, (issued, used)
    # The same sort spelled differently (the default) accepts it.
    cursor = (await get_page(client, owner, limit=3))["next_cursor"]
    assert (await get_page(client, owner, sort="name", limit=3, cursor=cursor))["items"]


async def test_walking_back_from_the_last_page_yields_the_list_reversed(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await populate(database)
    row_ids = await internal_ids(database)
    users = await everyone(client, owner)
    for params in ({}, {"status": "active", "q": "am"}, {"role": "user"}):
        selected = select_users(users, **params)
        for sort in ("name", "-email", "last_login_at", "-created_at"):
            expected = expected_order(selected, sort, row_ids)
            page = await get_page(client, owner, **params, sort=sort, limit=3, last="true")
            # The last page is the tail of the order, oldest-first within the page.
            assert [u["id"] for u in page["items"]] == expected[-3:], (params, sort)
            assert page["next_cursor"] is None
            assert page["counts"] == tab_counts(
                select_users(users, **{k: v for k, v in params.items() if k != "status"})
            ), (params, sort)
            seen = [u["id"] for u in page["items"]]
            while page["prev_cursor"]:
                page = await get_page(
                    client, owner, **params, sort=sort, limit=3, before=page["prev_cursor"]
                )
                assert page["next_cursor"], (params, sort)  # the way forward again
                seen = [u["id"] for u in page["items"]] + seen
            assert seen == expected, (params, sort)
            # Forward from the first page's next_cursor gives the second page again.
            if len(expected) > 3:
                first = await get_page(client, owner, **params, sort=sort, limit=3)
                assert first["prev_cursor"] is None
                second = await get_page(
                    client, owner, **params, sort=sort, limit=3, cursor=first["next_cursor"]
                )
                back = await get_page(
                    client, owner, **params, sort=sort, limit=3, before=second["prev_cursor"]
                )
                assert back["items"] == first["items"], (params, sort)


async def test_the_list_carries_the_seats_for_those_who_may_read_them(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await populate(database)
    seats = (await client.get("/api/v1/seats", headers=owner.headers)).json()
    page = await get_page(client, owner, limit=1)
    humans = [u for u in await everyone(client, owner) if u["type"] != "bot"]
    assert (
        page["seats"]
        == seats
        == {
            "used": sum(1 for u in humans if u["status"] != "deactivated"),
            "limit": None,
            "available": None,
        }
    )


async def test_cursor_before_and_last_are_exclusive_and_a_bad_before_is_named(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await populate(database)
    first = await get_page(client, owner, limit=2)
    second = await get_page(client, owner, limit=2, cursor=first["next_cursor"])
    for params, named in (
        ({"cursor": first["next_cursor"], "before": second["prev_cursor"]}, "before"),
        ({"cursor": first["next_cursor"], "last": "true"}, "last"),
        ({"before": second["prev_cursor"], "last": "true"}, "last"),
        ({"before": "not a cursor"}, "before"),
        ({"before": first["next_cursor"]}, "before"),  # a forward cursor is not a backward one
        ({"last": "maybe"}, "last"),
    ):
        response = await client.get(URL, params={"limit": 2, **params}, headers=owner.headers)
        assert error_fields(response) == {named}, params


INVALID_PARAMETERS: list[tuple[dict[str, Any], str]] = [
    ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"),
    ({"limit": -5}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"sort": "bogus"}, "sort"),
    ({"sort": "-"}, "sort"),
    ({"sort": "--name"}, "sort"),
    ({"sort": "+name"}, "sort"),
    ({"sort": "Name"}, "sort"),
    ({"sort": "password_hash"}, "sort"),
    ({"sort": "name,-email"}, "sort"),
    ({"role": "nope"}, "role"),
    ({"role": "Guest"}, "role"),
    ({"status": "bogus"}, "status"),
    ({"status": "ACTIVE"}, "status"),
    ({"q": "x" * 201}, "q"),
]


async def test_invalid_parameters_are_422_naming_the_parameter(
    client: httpx.AsyncClient, owner: Account
) -> None:
    for params, field_name in INVALID_PARAMETERS:
        response = await client.get(URL, params=params, headers=owner.headers)
        assert error_fields(response) == {field_name}, (params, response.text[:300])


async def test_limit_bounds_are_inclusive(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    await populate(database)
    one = await get_page(client, owner, limit=1)
    assert len(one["items"]) == 1 and one["next_cursor"]
    most = await get_page(client, owner, limit=500)
    assert len(most["items"]) == len(POPULATION) + 1 and most["next_cursor"] is None
    default = await get_page(client, owner)
    assert len(default["items"]) == len(POPULATION) + 1


# --- 5. a fixed number of queries per page ---------------------------------------------------


async def test_a_page_costs_the_same_few_queries_whatever_its_size(
    client: httpx.AsyncClient, owner: Account, database: Database
) -> None:
    roles = ["user", "guest", "user-manager", "admin"]
    specs = [
        Spec(
            f"Person {i:03d}",
            f"user{i:03d}",
            roles=[roles[i % 4], roles[(i + 1) % 4], "guest"],
            bot=i % 10 == 0,
            status="active" if i % 10 == 0 else "pending",
        )
        for i in range(130)
    ]
    ids = await seed(database, specs)
    row_ids = await internal_ids(database)
    async with database.transaction() as session:
        # Every user has a creator to load: the owner or one of five other users.
        creators = [row_ids[ids[f"user{i:03d}"]] for i in range(1, 6)]
        for i, username in enumerate(ids):
            await session.execute(
                update(User)
                .where(User.public_id == ids[username])
                .values(created_by_id=creators[i % 5] if i >= 5 else row_ids[owner.id])
            )
    await get_page(client, owner)  # the token's first use is written once; not a page cost

    cases = [
        {},
        {"sort": "-last_login_at"},
        {"sort": "-name"},
        {"q": "example"},
        {"q": "er"},
        {"role": "guest"},
        {"q": "user", "role": "guest", "status": "pending", "sort": "email"},
    ]
    for params in cases:
        costs = {}
        for limit in (5, 100):
            first = await get_page(client, owner, **params, limit=limit)
            with statements(database) as seen:
                page = await get_page(client, owner, **params, limit=limit)
            assert len(page["items"]) == limit and page["next_cursor"], params
            assert all(
                u["created_by"] and len(u["roles"]) >= 2
                for u in page["items"]
                if u["username"] != "olive"
            )
            with statements(database) as seen_next:
                await get_page(client, owner, **params, limit=limit, cursor=first["next_cursor"])
            costs[limit] = (len(seen), len(seen_next))
        assert costs[5] == costs[100], (params, costs)
        # Three of these read the seats: the workspace's limit, the seat counters and the
        # open invitations; one the status counters (the table's size decides how a search
        # is counted).
        assert costs[5][0] <= 14, (params, costs)


# --- 6. who may read the list ----------------------------------------------------------------


async def test_reading_the_list_needs_users_read(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    member = await directory.account("member", roles=["user"])
    guest = await directory.account("visitor", roles=["guest"])
    manager = await directory.account("manager", roles=["user-manager"])
    all_params: list[dict[str, Any]] = [{}, {"q": "member"}, {"status": "pending", "limit": 1}]
    for account in (member, guest):
        for params in all_params:
            response = await client.get(URL, params=params, headers=account.headers)
            assert response.status_code == 403, response.text
            assert response.json()["permission"] == "users.read"
            assert "items" not in response.json()
    page = await get_page(client, manager)
    assert {u["username"] for u in page["items"]} == {"olive", "member", "visitor", "manager"}

    anonymous = await client.get(URL)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"] == "Bearer"
    forged = await client.get(URL, headers={"Authorization": "Bearer not-a-real-token"})
    assert forged.status_code == 401, forged.text
    response = await client.post(f"{URL}/{manager.id}/deactivate", headers=owner.headers)
    assert response.status_code == 200, response.text
    assert (await client.get(URL, headers=manager.headers)).status_code == 401
