"""A realistic, seeded population of users for the benchmarks, and its bulk load.

People come from fourteen languages, in proportions a large international workspace might
have. Their given names and surnames keep their accents; surnames follow a Zipf law within
each language, and one in three comes from a long synthetic tail, so a few surnames are
shared by thousands of people at a million users while most are rare. Usernames
(`given.surname`, numbered when taken) and ASCII email addresses derive from the names.
About 85% are active, 5% pending and 10% deactivated; roles are mostly `user`, with some
guests, user managers and admins; a few are bots; sign-ups spread over six years.

The same seed always gives the same people. Each person passes the same input model as
`POST /api/v1/users` (UserCreate: name, username, email, roles, timezone rules); the rows are
then written in bulk with the key functions the actions use, in batches, with the
per-status counters set once at the end.

    from population import people, load

or, to load a fresh database and time the load:

    python bench/population.py --url postgresql://postgres@127.0.0.1/userdesk_bench --users 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.inputs import UserCreate, email_key, fold, sort_key
from userdesk.actions.users import search_text
from userdesk.config import Settings, async_database_url, sqlite_path
from userdesk.db import Database
from userdesk.models import Role, User, UserCount, UserStatus, UserType, user_roles
from userdesk.models.users import NEVER
from userdesk.queries.search import SQLITE_FILL_BIGRAMS
from userdesk.services import Services

# fmt: off
# language: (weight, timezone, given names, surnames most common first)
LANGUAGES: dict[str, tuple[int, str, tuple[str, ...], tuple[str, ...]]] = {
    "en": (
        26,
        "Europe/London",
        (
            "James", "Mary", "Oliver", "Emily", "Jack", "Sophie", "Harry", "Chloe", "George",
            "Grace", "William", "Lucy", "Thomas", "Hannah", "Daniel", "Ella", "Samuel", "Amelia"
        ),
        (
            "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
            "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green",
            "Hall", "Wood", "Jackson", "Clarke", "Patel", "Hughes", "Edwards", "Turner"
        ),
    ),
    "es": (
        14,
        "Europe/Madrid",
        (
            "José", "María", "Álvaro", "Lucía", "Sofía", "Hugo", "Martín", "Inés", "Jesús",
            "Ángela", "Raúl", "Begoña", "Iñigo", "Paula", "Adrián", "Nerea"
        ),
        (
            "García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez",
            "Pérez", "Gómez", "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz",
            "Álvarez", "Romero", "Alonso", "Gutiérrez", "Navarro", "Domínguez"
        ),
    ),
    "fr": (
        8,
        "Europe/Paris",
        (
            "Émile", "Chloé", "Léa", "Hélène", "François", "Zoé", "Noël", "Gaëlle", "Jérôme",
            "Céline", "Théo", "Anaïs", "Loïc", "Maëlle", "Benoît", "Agnès"
        ),
        (
            "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
            "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garçon", "Fournier",
            "Girard", "Bonnet", "Mercier", "Lemaître"
        ),
    ),
    "de": (
        8,
        "Europe/Berlin",
        (
            "Jürgen", "Jörg", "Anja", "Björn", "Käthe", "Lukas", "Sören", "Mia", "Günther", "Lena",
            "Maximilian", "Lea", "Uwe", "Greta", "Felix", "Ülkü"
        ),
        (
            "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
            "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf",
            "Schröder", "Neumann", "Schwarz", "Zimmermann", "Krüger", "Hofmann"
        ),
    ),
    "pt": (
        6,
        "America/Sao_Paulo",
        (
            "João", "Conceição", "Luís", "Inês", "Tomé", "Mônica", "Antônio", "Lúcia", "Gonçalo",
            "Débora", "Caio", "Bárbara"
        ),
        (
            "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira",
            "Lima", "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Araújo", "Gonçalves"
        ),
    ),
    "it": (
        5,
        "Europe/Rome",
        (
            "Niccolò", "Giulia", "Luca", "Chiara", "Matteo", "Francesca", "Nicolò", "Ilaria",
            "Andrea", "Martina"
        ),
        (
            "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci",
            "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa"
        ),
    ),
    "zh": (
        6,
        "Asia/Shanghai",
        (
            "Wei", "Fang", "Xiùyīng", "Jié", "Lì", "Mǐn", "Jūn", "Yàn", "Qiáng", "Lěi", "Jìng",
            "Tāo"
        ),
        (
            "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu",
            "Sun", "Ma", "Zhu", "Hu", "Guo", "Lǚ", "Gāo"
        ),
    ),
    "hi": (
        5,
        "Asia/Kolkata",
        (
            "Aarav", "Priya", "Vivaan", "Ananya", "Aditya", "Diya", "Arjun", "Saanvi", "Rohan",
            "Ishita", "Kabir", "Meera"
        ),
        (
            "Sharma", "Verma", "Gupta", "Singh", "Kumar", "Patel", "Reddy", "Iyer", "Nair",
            "Mehta", "Joshi", "Chatterjee", "Banerjee", "Rao", "Desai", "Kapoor"
        ),
    ),
    "vi": (
        3,
        "Asia/Ho_Chi_Minh",
        (
            "Anh", "Bảo", "Châu", "Dũng", "Hà", "Hương", "Khánh", "Linh", "Minh", "Phương", "Quân",
            "Thảo"
        ),
        (
            "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi",
            "Đỗ", "Hồ", "Ngô", "Dương", "Lý"
        ),
    ),
    "ja": (
        3,
        "Asia/Tokyo",
        (
            "Haruto", "Yui", "Sōta", "Aoi", "Ren", "Hina", "Yūki", "Sakura", "Kōji", "Mei"
        ),
        (
            "Satō", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Itō", "Yamamoto", "Nakamura",
            "Kobayashi", "Katō", "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto"
        ),
    ),
    "pl": (
        3,
        "Europe/Warsaw",
        (
            "Łukasz", "Małgorzata", "Paweł", "Agnieszka", "Michał", "Zofia", "Wojciech", "Żaneta",
            "Krzysztof", "Beata"
        ),
        (
            "Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski",
            "Zieliński", "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Jankowski"
        ),
    ),
    "tr": (
        3,
        "Europe/Istanbul",
        (
            "Çağla", "Şükrü", "Gülşen", "İbrahim", "Özge", "Burak", "Elif", "Mustafa", "Zeynep",
            "Emre"
        ),
        (
            "Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Yıldız", "Yıldırım", "Öztürk", "Aydın",
            "Özdemir", "Arslan", "Doğan", "Kılıç", "Aslan", "Çetin"
        ),
    ),
    "ru": (
        3,
        "Europe/Moscow",
        (
            "Dmitri", "Olga", "Sergei", "Natalya", "Aleksei", "Yekaterina", "Ivan", "Tatyana",
            "Mikhail", "Svetlana"
        ),
        (
            "Ivanov", "Smirnov", "Kuznetsov", "Popov", "Vasilyev", "Petrov", "Sokolov",
            "Mikhailov", "Novikov", "Fyodorov", "Morozov", "Volkov", "Alekseyev", "Lebedev"
        ),
    ),
    "sv": (
        2,
        "Europe/Stockholm",
        (
            "Åsa", "Björn", "Märta", "Sven", "Ingrid", "Lars", "Linnéa", "Östen", "Maja", "Axel"
        ),
        (
            "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson",
            "Persson", "Svensson", "Gustafsson", "Lindström", "Åberg", "Sjöberg", "Söderberg"
        ),
    ),
}
# Syllables of the long tail of rare surnames (one in three surnames).
TAIL_SYLLABLES = (
    "ka", "lo", "mi", "ren", "sa", "tor", "vel", "an", "bri", "dov", "ek", "fal", "gun", "ha",
    "isk", "jo", "kel", "lun", "mar", "nor", "os", "pel", "qui", "rud", "sten", "tal", "ul", "van",
    "wy", "zer", "ø", "é", "ü", "ñ"
)
# fmt: on
TAIL_SHARE = 1 / 3
ZIPF = 0.9
DOMAINS = ("example.com", "example.org", "mail.example.net", "corp.example.com")
BOT_SHARE = 0.002
HUMAN_ROLES = (("user", 88.0), ("guest", 6.0), ("user-manager", 4.5), ("admin", 1.5))
STATUSES = ((UserStatus.ACTIVE, 85.0), (UserStatus.PENDING, 5.0), (UserStatus.DEACTIVATED, 10.0))
# A fixed "now", so a seed gives the same timestamps whenever it runs.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=6 * 365)
BATCH = 5_000


@dataclass(frozen=True)
class Person:
    name: str
    username: str
    email: str
    role: str
    type: UserType
    status: UserStatus
    timezone: str
    created_at: datetime
    last_login_at: datetime | None


def ascii_of(text: str) -> str:
    """Letters without their accents, for email addresses (ø, ß, ł and ı have no accent to
    drop, so they are spelt out)."""
    spelt = text.translate(
        str.maketrans(
            {
                "ø": "o",
                "Ø": "O",
                "ß": "ss",
                "ł": "l",
                "Ł": "L",
                "ı": "i",
                "đ": "d",
                "Đ": "D",
                "æ": "ae",
                "œ": "oe",
            }
        )
    )
    decomposed = unicodedata.normalize("NFKD", spelt)
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c in ".-"))


def _zipf_weights(count: int) -> list[float]:
    return [1 / (rank**ZIPF) for rank in range(1, count + 1)]


def people(count: int, seed: int = 1) -> Iterator[Person]:
    """`count` people, the same ones for the same seed; usernames and emails unique."""
    rng = random.Random(seed)
    languages = list(LANGUAGES.items())
    language_weights = [weight for _, (weight, *_rest) in languages]
    surname_weights = {code: _zipf_weights(len(data[3])) for code, data in languages}
    usernames, addresses = _Names(), _Names()
    for n in range(count):
        if rng.random() < BOT_SHARE:
            yield _bot(rng, n)
            continue
        code, (_, zone, givens, surnames) = rng.choices(languages, language_weights)[0]
        given = rng.choice(givens)
        if rng.random() < TAIL_SHARE:
            surname = "".join(rng.choice(TAIL_SYLLABLES) for _ in range(rng.randint(2, 4)))
            surname = surname[:1].upper() + surname[1:]
        else:
            surname = rng.choices(surnames, surname_weights[code])[0]
        # Folded, as usernames compare; marks that are not letters (İ folds to i + a dot
        # above) and spaces go.
        base = "".join(c for c in fold(f"{given}.{surname}") if c.isalnum() or c in "._-")[:24]
        username = usernames.take(base)
        # Addresses are ASCII: "bảo.wyøsten" and "bao.wyosten" would share one.
        local = addresses.take(ascii_of(username).lower())
        email = f"{local}@{DOMAINS[n % len(DOMAINS)]}"
        status = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES])[0]
        created = EPOCH - SPAN + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))
        last_login = None
        if status is not UserStatus.PENDING:
            last_login = created + (EPOCH - created) * rng.random()
        yield Person(
            name=f"{given} {surname}",
            username=username,
            email=email,
            role=rng.choices([r for r, _ in HUMAN_ROLES], [w for _, w in HUMAN_ROLES])[0],
            type=UserType.HUMAN,
            status=status,
            timezone=zone,
            created_at=created,
            last_login_at=last_login,
        )


class _Names:
    """Hands out `base`, or `base2`, `base3`... : the first nobody has yet (a numbered name
    can meet a plain one: the second "harry.ulowy" and a first "harry.ulowy2")."""

    def __init__(self) -> None:
        self.issued: set[str] = set()
        self.counters: dict[str, int] = {}

    def take(self, base: str) -> str:
        number = self.counters.get(base, 0)
        while True:
            number += 1
            candidate = base if number == 1 else f"{base}{number}"
            if candidate not in self.issued:
                break
        self.counters[base] = number
        self.issued.add(candidate)
        return candidate


def _bot(rng: random.Random, n: int) -> Person:
    purpose = rng.choice(("deploy", "backup", "alerts", "import", "sync", "report"))
    created = EPOCH - SPAN + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))
    return Person(
        name=f"{purpose.title()} bot {n}",
        username=f"{purpose}-bot-{n}",
        email=f"{purpose}-bot-{n}@bots.example.com",
        role="bot",
        type=UserType.BOT,
        status=UserStatus.ACTIVE,
        timezone="UTC",
        created_at=created,
        last_login_at=None,
    )


def _row(person: Person, checked: UserCreate, row_id: int, rng: random.Random) -> dict[str, object]:
    last_login = person.last_login_at
    return {
        "id": row_id,
        "public_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "username": checked.username,
        "username_key": fold(checked.username),
        "email": checked.email,
        "email_key": email_key(checked.email),
        "email_verified": person.status is not UserStatus.PENDING,
        "name": checked.name,
        "name_key": sort_key(checked.name),
        "avatar_kind": "initials",
        "timezone": checked.timezone,
        "type": person.type,
        "status": person.status,
        "require_password_change": False,
        "search_text": search_text(checked.name, checked.username, checked.email),
        "created_at": person.created_at,
        "updated_at": person.created_at,
        "last_login_at": last_login,
        "last_login_key": last_login or NEVER,
        "deactivated_at": person.created_at if person.status is UserStatus.DEACTIVATED else None,
    }


async def _copy(session: AsyncSession, table: str, rows: list[dict[str, object]]) -> None:
    columns = list(rows[0])
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    async with driver.cursor() as cursor:
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        async with cursor.copy(statement) as copy:
            for row in rows:
                await copy.write_row([row[column] for column in columns])


@asynccontextmanager
async def _indexes_set_aside(database: Database) -> AsyncIterator[None]:
    """The secondary indexes of users and user_roles (and SQLite's search triggers) are
    dropped for the load and built again after it: building an index once costs far less
    than keeping it up to date row by row. Primary keys and unique constraints stay, so the
    load is still checked against them."""
    postgresql = database.dialect == "postgresql"
    async with database.transaction() as session:
        if postgresql:
            found = await session.execute(
                text(
                    "SELECT 'INDEX', indexname, indexdef FROM pg_indexes "
                    "WHERE schemaname = current_schema() AND tablename IN ('users', 'user_roles')"
                    " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
                )
            )
        else:
            found = await session.execute(
                text(
                    "SELECT upper(type), name, sql FROM sqlite_master "
                    "WHERE type IN ('index', 'trigger') AND tbl_name IN ('users', 'user_roles')"
                    " AND sql IS NOT NULL"
                )
            )
        saved = [tuple(row) for row in found]
        for kind, name, _definition in saved:
            await session.execute(text(f'DROP {kind} "{name}"'))
    try:
        yield
    finally:
        async with database.transaction() as session:
            if postgresql:
                await session.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
            for _kind, _name, definition in saved:
                await session.execute(text(definition))
            if not postgresql:
                # The search tables missed the rows the triggers would have added.
                await session.execute(
                    text("INSERT INTO users_search(users_search) VALUES ('rebuild')")
                )
                await session.execute(
                    text("INSERT INTO users_bigrams(users_bigrams) VALUES ('delete-all')")
                )
                await session.execute(text(SQLITE_FILL_BIGRAMS))


async def load(database: Database, count: int, *, seed: int = 1) -> int:
    """Add `count` people to the database (after its existing users); returns how many.

    Every person is checked by UserCreate, the model behind POST /api/v1/users, before the
    batch holding them is written."""
    async with _indexes_set_aside(database):
        return await _load(database, count, seed=seed)


async def _load(database: Database, count: int, *, seed: int) -> int:
    rng = random.Random(seed ^ 0x5EED)
    async with database.transaction() as session:
        role_ids = {r.name: r.id for r in await session.scalars(select(Role))}
        first_id = (await session.scalar(select(User.id).order_by(User.id.desc()).limit(1))) or 0
    totals: dict[tuple[UserStatus, UserType], int] = {}
    users: list[dict[str, object]] = []
    links: list[dict[str, object]] = []

    async def flush() -> None:
        async with database.transaction() as session:
            if database.dialect == "postgresql":
                # COPY: the rows stream in one command, not one INSERT each.
                await _copy(session, "users", users)
                await _copy(session, "user_roles", links)
            else:
                await session.execute(insert(User), users)
                await session.execute(insert(user_roles), links)
        users.clear()
        links.clear()

    for n, person in enumerate(people(count, seed), start=1):
        checked = UserCreate(
            name=person.name,
            username=person.username,
            email=person.email,
            type=person.type,
            roles=[person.role],
            timezone=person.timezone,
        )
        users.append(_row(person, checked, first_id + n, rng))
        links.append({"user_id": first_id + n, "role_id": role_ids[person.role]})
        totals[(person.status, person.type)] = totals.get((person.status, person.type), 0) + 1
        if len(users) >= BATCH:
            await flush()
    if users:
        await flush()
    async with database.transaction() as session:
        if database.dialect == "postgresql":
            # The rows came with their ids: the sequence must move past them, or the next
            # user created through the API would collide with one.
            await session.execute(
                text("SELECT setval(pg_get_serial_sequence('users', 'id'), max(id)) FROM users")
            )
        for (status, kind), added in totals.items():
            await session.execute(
                update(UserCount)
                .where(UserCount.status == status, UserCount.type == kind)
                .values(count=UserCount.count + added)
            )
    return count


def fresh(url: str) -> None:
    """Drop and create the benchmark database (a SQLite file, or a PostgreSQL database)."""
    path = sqlite_path(url)
    if path is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    target = make_url(async_database_url(url))
    admin = target.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{target.database}"')


async def analyze(database: Database) -> None:
    """Fresh planner statistics after a bulk load."""
    autocommit = database.engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as conn:
        await conn.exec_driver_sql(
            "VACUUM ANALYZE" if database.dialect == "postgresql" else "ANALYZE"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description="Load a fresh database with N people.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    fresh(args.url)
    database = Database(args.url, Services.from_settings(Settings()))
    try:
        await database.migrate()
        started = time.perf_counter()
        await load(database, args.users, seed=args.seed)
        loaded = time.perf_counter() - started
        await analyze(database)
        print(
            f"loaded {args.users} users in {loaded:.0f} s, analyzed in "
            f"{time.perf_counter() - started - loaded:.0f} s ({database.dialect})"
        )
    finally:
        await database.dispose()


if __name__ == "__main__":
    asyncio.run(main())
