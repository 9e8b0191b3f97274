"""The benchmark: userdesk as a real server over HTTP at N users, on PostgreSQL and SQLite,
beside the Django admin's user changelist over the same people.

    python bench/run.py                                   # 10k, 100k and 1M users, both databases
    python bench/run.py --users 10000 --samples 20 --out /tmp/smoke     # CI's smoke run

For each N and database it loads a fresh database with the seeded population
(bench/population.py), starts `userdesk serve` as its own process, and times each request
from this process over HTTP, one at a time on a kept-alive connection, after a warm-up:
p50, p95 and p99 latency and the requests per second that one client gets. Sign-in and
user creation are also driven by several clients at once, for throughput; sign-in
throughput is set beside the bound of the password hash itself (raw argon2id verifies per
second with one thread per core, at the server's parameters, measured in the same run).
The server's memory (RSS, and its peak) is read from /proc after the run. Then the Django
admin (bench/peers/django_admin) gets the same people and the equivalent requests, with
the same client and sampler.

Results go to --out (bench/results by default): results.json (every number, the machine
and the versions), results.md (the tables, with the issue's targets checked) and p95.png
(p95 against N for each request on each database).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import population  # noqa: E402
from userdesk.actions.context import Actor  # noqa: E402
from userdesk.actions.inputs import UserCreate  # noqa: E402
from userdesk.actions.tokens import create_token  # noqa: E402
from userdesk.actions.users import bootstrap_owner, create_user  # noqa: E402
from userdesk.config import Settings  # noqa: E402
from userdesk.db import Database  # noqa: E402
from userdesk.services import Services  # noqa: E402

OWNER = "bench-owner"
SIGNER = "bench-signin"
PASSWORD = "bench-Password-2026!"  # the benchmark's own throwaway accounts
PAGE = 100  # rows per list page: the Django admin's page, so both fetch as much
COMMON = "smith"
SHORT = "zo"
SYSTEM = Actor.system("bench")

# The requests timed on both systems, in table order; the Django admin has no equivalent
# of the writes, the console page (its changelist is its HTML page) or sign-in.
LIST_REQUESTS = (
    "first_page",
    "search_common",
    "search_rare",
    "search_short",
    "role_and_status",
    "inactive",
    "sort_email_desc",
    "page_101",
    "last_page",
)
TITLES = {
    "first_page": "first Users page (all tab, counts, seats)",
    "search_common": f"search, common surname `{COMMON}`",
    "search_rare": "search, rare substring",
    "search_short": f"search, 2 characters `{SHORT}`",
    "role_and_status": "role filter `admin` + Active tab",
    "inactive": "Deactivated tab (Django: is_active=No)",
    "sort_email_desc": "sort by email, descending",
    "page_101": "page after 100 cursor steps (Django: page 101)",
    "last_page": "last page",
    "user_info": "User Info",
    "console_page": "console Users page, HTML (Django: changelist)",
    "create_user": "create user (no password)",
    "deactivate": "deactivate",
    "activate": "activate",
    "sign_in": "sign in with password",
}
# What the Django admin request of the same name stands for, where the names differ.
PEER_EQUIVALENT = {"console_page": "first_page"}


# --- sampling --------------------------------------------------------------------------------


@dataclass
class Stats:
    samples: int
    p50: float
    p95: float
    p99: float
    mean: float
    rps: float
    status: int
    hits: int | None = None

    @classmethod
    def of(cls, times: list[float], elapsed: float, status: int, hits: int | None) -> Stats:
        ordered = sorted(times)

        def rank(q: float) -> float:  # nearest rank
            return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000

        return cls(
            samples=len(ordered),
            p50=round(rank(0.50), 2),
            p95=round(rank(0.95), 2),
            p99=round(rank(0.99), 2),
            mean=round(sum(ordered) / len(ordered) * 1000, 2),
            rps=round(len(ordered) / elapsed, 1),
            status=status,
            hits=hits,
        )


@dataclass
class Sampler:
    warmup: int
    samples: int
    min_samples: int
    budget: float  # seconds per request, after which sampling stops once min_samples is met

    def measure(self, call: Callable[[int], httpx.Response], expect: int = 200) -> Stats:
        """Time `call(i)` sequentially. Every answer must have the expected status."""
        response = None
        for i in range(self.warmup):
            response = _checked(call(-1 - i), expect)
        times: list[float] = []
        started = time.perf_counter()
        for i in range(self.samples):
            t0 = time.perf_counter()
            response = call(i)
            times.append(time.perf_counter() - t0)
            _checked(response, expect)
            if len(times) >= self.min_samples and time.perf_counter() - started > self.budget:
                break
        elapsed = time.perf_counter() - started
        assert response is not None
        return Stats.of(times, elapsed, response.status_code, _hits(response))


def paired(
    sampler: Sampler, first: Callable[[], httpx.Response], second: Callable[[], httpx.Response]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two requests that undo each other (deactivate, activate), timed alternately."""
    for _ in range(sampler.warmup):
        _checked(first(), 200)
        _checked(second(), 200)
    times: tuple[list[float], list[float]] = ([], [])
    started = time.perf_counter()
    for _ in range(sampler.samples):
        for call, seen in ((first, times[0]), (second, times[1])):
            t0 = time.perf_counter()
            response = call()
            seen.append(time.perf_counter() - t0)
            _checked(response, 200)
        if len(times[0]) >= sampler.min_samples and time.perf_counter() - started > sampler.budget:
            break
    elapsed = (time.perf_counter() - started) / 2
    return (
        Stats.of(times[0], elapsed, 200, None).__dict__,
        Stats.of(times[1], elapsed, 200, None).__dict__,
    )


def _checked(response: httpx.Response, expect: int) -> httpx.Response:
    if response.status_code != expect:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code}, not {expect}: {response.text[:300]}"
            f"{response.headers.get('location', '')}"
        )
    return response


def _hits(response: httpx.Response) -> int | None:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return None
    body = response.json()
    counts = body.get("counts") if isinstance(body, dict) else None
    return counts.get("all") if isinstance(counts, dict) else None


def _for_seconds(
    work: Callable[[int, float], int], threads: int, seconds: float
) -> tuple[int, float]:
    """Run work(slot, deadline) on `threads` threads at once, each returning how many it did
    by the shared deadline (`seconds` from now): the total, and the seconds it took."""
    done = [0] * threads
    started = time.perf_counter()
    stop = started + seconds

    def run(slot: int) -> None:
        done[slot] = work(slot, stop)

    pool = [threading.Thread(target=run, args=(slot,)) for slot in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(done), time.perf_counter() - started


def concurrently(
    make_client: Callable[[], httpx.Client],
    call: Callable[[httpx.Client, int], httpx.Response],
    *,
    workers: int,
    seconds: float,
    expect: int,
) -> dict[str, float]:
    """`workers` clients calling as fast as answers come, for `seconds`: requests per second."""
    errors: list[str] = []

    def work(slot: int, stop: float) -> int:
        with make_client() as client:
            n = 0
            while time.perf_counter() < stop and not errors:
                response = call(client, slot * 1_000_000 + n)
                if response.status_code != expect:
                    errors.append(f"{response.status_code}: {response.text[:200]}")
                n += 1
            return n

    requests, elapsed = _for_seconds(work, workers, seconds)
    if errors:
        raise RuntimeError(f"concurrent run failed: {errors[0]}")
    return {"workers": workers, "requests": requests, "rps": round(requests / elapsed, 1)}


def argon2_bound(settings: Settings, *, threads: int, seconds: float) -> dict[str, float]:
    """Raw argon2id verifies per second at the server's parameters, one thread per core (the
    library releases the GIL while it hashes, as it does in the server's threads)."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )
    digest = hasher.hash(PASSWORD)

    def work(_slot: int, stop: float) -> int:
        n = 0
        while time.perf_counter() < stop:
            hasher.verify(digest, PASSWORD)
            n += 1
        return n

    verifies, elapsed = _for_seconds(work, threads, seconds)
    return {
        "threads": threads,
        "verifies_per_second": round(verifies / elapsed, 1),
        "time_cost": settings.argon2_time_cost,
        "memory_kib": settings.argon2_memory_kib,
        "parallelism": settings.argon2_parallelism,
    }


def python_speed() -> float:
    """Milliseconds one core takes for a fixed piece of pure-Python work (best of five): the
    machine's raw speed when the run was made. A tight loop misses what a busy neighbour
    does to caches and memory; runs of the server here swung by up to 2x while this read
    about the same (BENCHMARKS.md)."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i % 7
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


# --- the population's landmarks --------------------------------------------------------------


@dataclass(frozen=True)
class Landmarks:
    """What the requests need from the population of N: a rare term with a handful of hits,
    a user in the middle for User Info, and an active person to deactivate and activate."""

    users: int
    rare: str
    middle: str
    toggled: str


def landmarks(users: int, seed: int) -> Landmarks:
    surnames: Counter[str] = Counter()
    middle = toggled = ""
    for n, person in enumerate(population.people(users, seed)):
        words = person.name.split()
        if len(words) > 1 and person.type.value == "human":
            surnames[population.ascii_of(words[-1]).lower()] += 1
        if n == users // 2:
            middle = person.username
        if (
            not toggled
            and n >= users // 3
            and person.role == "user"
            and person.status.value == "active"
            and person.type.value == "human"
        ):
            toggled = person.username
    # The first (alphabetically) long surname that only a few people share and that is no
    # part of a commoner one.
    rare = next(
        (
            name
            for name, count in sorted(surnames.items())
            if len(name) >= 9
            and 2 <= count <= 6
            and not any(name in other and other != name for other in surnames)
        ),
        "",
    ) or min(surnames, key=lambda s: (surnames[s], -len(s), s))
    return Landmarks(users, rare, middle, toggled)


# --- the machine -----------------------------------------------------------------------------


def machine(postgres_url: str | None) -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_kib = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
    facts: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "python_loop_ms": python_speed(),
    }
    if postgres_url:
        with psycopg.connect(_sync_url(postgres_url, "postgres")) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            facts["postgresql"] = row[0] if row else "?"
    for package in ("userdesk", "fastapi", "uvicorn", "sqlalchemy", "django", "gunicorn"):
        try:
            from importlib.metadata import version

            facts[package] = version(package)
        except Exception:  # noqa: BLE001 - a missing package is reported, not fatal here
            facts[package] = None
    return facts


def _sync_url(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def database_url(
    kind: str, system: str, users: int, postgres: str, sqlite_dir: Path, prefix: str = "bench"
) -> str:
    name = f"{prefix}_{system}_{users}"
    if kind == "sqlite":
        return f"sqlite:///{sqlite_dir / (name + '.db')}"
    return make_url(postgres).set(database=name).render_as_string(hide_password=False)


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (VmHWM), in MB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = round(int(rest.split()[0]) / 1024, 1)
    return {"rss_mb": values.get("VmRSS", 0.0), "peak_rss_mb": values.get("VmHWM", 0.0)}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_request(seconds: float, run: dict[str, float]) -> float:
    return round(seconds * 1000 / max(run["requests"], 1), 1)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer {url} within {timeout} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve_command() -> list[str]:
    """`userdesk serve`, the installed script beside this interpreter when there is one."""
    script = Path(sys.executable).with_name("userdesk")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-c", "from userdesk.cli import main; main()", "serve"]


# --- userdesk --------------------------------------------------------------------------------


async def _prepare_userdesk(url: str, users: int, seed: int, reuse: bool) -> dict[str, Any]:
    """A fresh database with the owner the harness acts as (and a token of theirs), a user
    to sign in as, and the population; the load is timed. With `reuse`, a database an
    earlier run loaded is kept (only a new token is made): for working on one request."""
    if reuse:
        database = Database(url, Services.from_settings(Settings()))
        try:
            async with database.transaction() as session:
                # A load cut short leaves its indexes set aside: such a database is loaded again.
                if database.dialect == "postgresql":
                    probe = (
                        "SELECT count(*) FROM pg_indexes "
                        "WHERE indexname = 'ix_users_search_text_trgm'"
                    )
                else:
                    probe = "SELECT count(*) FROM sqlite_master WHERE name = 'users_search_ai'"
                if not await session.scalar(text(probe)):
                    raise LookupError("an interrupted load: its indexes are missing")
                _, token = await create_token(session, actor=SYSTEM, username=OWNER, name="bench")
            return {"token": token, "load_seconds": None}
        except Exception as exc:  # noqa: BLE001 - no usable earlier load: make one
            print(f"  (cannot reuse {url}: {type(exc).__name__}; loading it)", flush=True)
        finally:
            await database.dispose()
    population.fresh(url)
    database = Database(url, Services.from_settings(Settings()))
    try:
        await database.migrate()
        async with database.transaction() as session:
            await bootstrap_owner(
                session,
                actor=SYSTEM,
                data=UserCreate(
                    name="Bench Owner",
                    username=OWNER,
                    email="owner@bench.example",
                    password=PASSWORD,
                ),
            )
            _, token = await create_token(session, actor=SYSTEM, username=OWNER, name="bench")
            await create_user(
                session,
                actor=SYSTEM,
                data=UserCreate(
                    name="Bench Signin",
                    username=SIGNER,
                    email="signin@bench.example",
                    password=PASSWORD,
                ),
            )
        started = time.perf_counter()
        await population.load(database, users, seed=seed)
        loaded = time.perf_counter() - started
        await population.analyze(database)
        return {"token": token, "load_seconds": round(loaded, 1)}
    finally:
        await database.dispose()


def run_userdesk(
    kind: str, url: str, marks: Landmarks, args: argparse.Namespace, logs: Path
) -> dict[str, Any]:
    print(f"[userdesk {kind} {marks.users:,}] loading", flush=True)
    prepared = asyncio.run(_prepare_userdesk(url, marks.users, args.seed, args.reuse))
    print(f"[userdesk {kind} {marks.users:,}] loaded in {prepared['load_seconds']} s", flush=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = logs / f"userdesk-{kind}-{marks.users}.log"
    env = os.environ | {
        "USERDESK_DATABASE_URL": url,
        "USERDESK_HOST": "127.0.0.1",
        "USERDESK_PORT": str(port),
        "USERDESK_PUBLIC_URL": base,
        "USERDESK_SECRET_KEY": "bench-secret-key-" + "x" * 32,
        # The client signs in to the console over plain http://127.0.0.1.
        "USERDESK_COOKIE_SECURE": "false",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(serve_command(), env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(f"{base}/healthz", process, log)
        result = _drive_userdesk(base, prepared["token"], marks, args, process.pid)
        result.update(rss_mb(process.pid))
    finally:
        stop(process)
    return {
        "system": "userdesk",
        "database": kind,
        "users": marks.users,
        "load_seconds": prepared["load_seconds"],
        **result,
    }


def _drive_userdesk(
    base: str, token: str, marks: Landmarks, args: argparse.Namespace, server: int
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}"}
    api = httpx.Client(base_url=base, headers=auth, timeout=120)
    console = httpx.Client(base_url=base, timeout=120)
    sampler = Sampler(args.warmup, args.samples, args.min_samples, args.budget)
    users = "/api/v1/users"

    def find(username: str) -> str:
        page = api.get(users, params={"q": username, "limit": 5}).json()
        return next(u["id"] for u in page["items"] if u["username"] == username)

    middle, toggled = find(marks.middle), find(marks.toggled)
    cursor: str | None = None
    for _ in range(100):
        cursor = api.get(
            users, params={"limit": PAGE, **({"cursor": cursor} if cursor else {})}
        ).json()["next_cursor"]
        if cursor is None:
            break
    signed_in = console.post(
        "/login",
        data={"login": OWNER, "password": PASSWORD, "next": "/users"},
        headers={"Origin": base},
    )
    if signed_in.status_code != 303 or "userdesk_session" not in console.cookies:
        raise RuntimeError(
            f"console sign-in failed: {signed_in.status_code} {signed_in.text[:300]}"
        )

    def listing(**params: Any) -> Callable[[int], httpx.Response]:
        return lambda _i: api.get(users, params={"limit": PAGE, **params})

    reads: dict[str, Callable[[int], httpx.Response]] = {
        "first_page": listing(),
        "search_common": listing(q=COMMON),
        "search_rare": listing(q=marks.rare),
        "search_short": listing(q=SHORT),
        "role_and_status": listing(role="admin", status="active"),
        "inactive": listing(status="deactivated"),
        "sort_email_desc": listing(sort="-email"),
        "last_page": listing(last="true"),
        "user_info": lambda _i: api.get(f"{users}/{middle}"),
        "console_page": lambda _i: console.get("/users"),
    }
    if cursor:  # fewer than 101 pages at this N: there is no such page
        reads["page_101"] = listing(cursor=cursor)
    if args.only:
        reads = {n: c for n, c in reads.items() if n in args.only}
    results: dict[str, Any] = {}
    for name, call in reads.items():
        results[name] = sampler.measure(call).__dict__
        print(f"  {name:16} {_line(results[name])}", flush=True)

    if args.only and not {"create_user", "deactivate", "activate", "sign_in"} & set(args.only):
        for client in (api, console):
            client.close()
        return {"requests": results}
    run_tag = f"{int(time.time() * 1000) % 10**8:08d}"

    def create(i: int) -> httpx.Response:
        return api.post(
            users,
            json={
                "name": f"Bench New {run_tag} {i}",
                "username": f"bench-new-{run_tag}-{i}".replace("--", "-m"),
                "email": f"new-{run_tag}-{i}@bench.example".replace("--", "-m"),
                "roles": ["user"],
            },
        )

    writes = Sampler(args.warmup, args.samples, args.min_samples, args.budget)
    results["create_user"] = writes.measure(create, expect=201).__dict__
    results["deactivate"], results["activate"] = paired(
        writes,
        lambda: api.post(f"{users}/{toggled}/deactivate"),
        lambda: api.post(f"{users}/{toggled}/activate"),
    )
    for name in ("create_user", "deactivate", "activate"):
        print(f"  {name:16} {_line(results[name])}", flush=True)

    # Sign-in: latency one at a time, then throughput with two clients per core, set beside
    # raw argon2id on the same cores.
    def sign_in(client: httpx.Client, _i: int) -> httpx.Response:
        return client.post("/api/v1/auth/login", json={"login": SIGNER, "password": PASSWORD})

    signer = httpx.Client(base_url=base, timeout=120)
    results["sign_in"] = (
        Sampler(2, max(args.min_samples, min(args.samples, 50)), args.min_samples, args.budget)
        .measure(lambda i: sign_in(signer, i))
        .__dict__
    )
    print(f"  {'sign_in':16} {_line(results['sign_in'])}", flush=True)
    cores = os.cpu_count() or 1
    bound = argon2_bound(Settings(), threads=cores, seconds=args.throughput_seconds)
    used = cpu_seconds(server)
    throughput = concurrently(
        lambda: httpx.Client(base_url=base, timeout=120),
        sign_in,
        workers=2 * cores,
        seconds=args.throughput_seconds,
        expect=200,
    )
    throughput["server_cpu_ms"] = _per_request(cpu_seconds(server) - used, throughput)
    # What one verify costs the CPU, from the raw rate on `cores` threads.
    throughput["hash_cpu_ms"] = round(cores * 1000 / bound["verifies_per_second"], 1)
    used = cpu_seconds(server)
    create_rate = concurrently(
        lambda: httpx.Client(base_url=base, headers=auth, timeout=120),
        lambda client, i: client.post(
            users,
            json={
                "name": f"Bench Burst {run_tag} {i}",
                "username": f"bench-burst-{run_tag}-{i}",
                "email": f"burst-{run_tag}-{i}@bench.example",
                "roles": ["user"],
            },
        ),
        workers=4,
        seconds=args.throughput_seconds,
        expect=201,
    )
    create_rate["server_cpu_ms"] = _per_request(cpu_seconds(server) - used, create_rate)
    signin = {
        "throughput": throughput,
        "argon2": bound,
        "share_of_bound": round(throughput["rps"] / bound["verifies_per_second"], 3),
    }
    print(
        f"  sign-in throughput {throughput['rps']}/s, raw argon2id {bound['verifies_per_second']}/s"
        f" ({signin['share_of_bound']:.0%}); server CPU {throughput['server_cpu_ms']} ms per "
        f"sign-in, of which the hash {throughput['hash_cpu_ms']} ms; creating "
        f"{create_rate['rps']} users/s at {create_rate['server_cpu_ms']} ms CPU each",
        flush=True,
    )
    for client in (api, console, signer):
        client.close()
    return {"requests": results, "signin": signin, "create_throughput": create_rate}


def _line(stats: dict[str, Any]) -> str:
    hits = f"  hits {stats['hits']:,}" if stats.get("hits") is not None else ""
    return (
        f"p50 {stats['p50']:8.1f}  p95 {stats['p95']:8.1f}  p99 {stats['p99']:8.1f} ms"
        f"  {stats['rps']:7.1f}/s  n={stats['samples']}{hits}"
    )


# --- the peer --------------------------------------------------------------------------------


def run_peer(
    kind: str, url: str, marks: Landmarks, args: argparse.Namespace, logs: Path
) -> dict[str, Any]:
    from bench.peers import django_admin

    print(f"[django {kind} {marks.users:,}] loading", flush=True)
    started = time.perf_counter()
    django_admin.load(url, marks.users, seed=args.seed)
    loaded = round(time.perf_counter() - started, 1)
    port = free_port()
    log = logs / f"django-{kind}-{marks.users}.log"
    with log.open("wb") as out:
        process = django_admin.start_server(url, port, stdout=out, stderr=subprocess.STDOUT)
    try:
        django_admin.wait_until_up(process, port, timeout=60)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
        django_admin.sign_in(client)
        paths = django_admin.requests(marks.users, rare=marks.rare, common=COMMON, short=SHORT)
        if marks.users + 1 <= 100 * django_admin.PER_PAGE:
            paths.pop("page_101", None)  # no such page at this N
        sampler = Sampler(args.warmup, args.samples, args.peer_min_samples, args.budget)
        results: dict[str, Any] = {}
        for name, path in paths.items():
            results[name] = sampler.measure(lambda _i, p=path: client.get(p)).__dict__
            print(f"  {name:16} {_line(results[name])}", flush=True)
        client.close()
        worker = children(process.pid)
        memory = rss_mb(worker[0] if worker else process.pid)
    finally:
        django_admin.stop_server(process)
    return {
        "system": "django-admin",
        "database": kind,
        "users": marks.users,
        "load_seconds": loaded,
        "requests": results,
        **memory,
    }


# --- reporting -------------------------------------------------------------------------------


def _find(runs: list[dict[str, Any]], system: str, kind: str, users: int) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in runs
            if r["system"] == system and r["database"] == kind and r["users"] == users
        ),
        None,
    )


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _speed_line(m: dict[str, Any]) -> list[str]:
    if "python_loop_ms" not in m:
        return []
    end = m.get("python_loop_ms_end")
    return [
        "The machine's speed during the run: a fixed pure-Python loop (`python_speed()` in "
        f"bench/run.py) took {m['python_loop_ms']} ms at the start"
        + (f" and {end} ms at the end" if end else "")
        + ". It shows a change in the machine's raw speed; it did not track the swings of up "
        "to 2x seen between runs of the server under load on this shared VM.",
        "",
    ]


def markdown(report: dict[str, Any]) -> str:
    runs = report["runs"]
    sizes = sorted({r["users"] for r in runs})
    kinds = [k for k in ("postgresql", "sqlite") if any(r["database"] == k for r in runs)]
    lines = [f"Measured {report['finished']} with `{report['command']}`.", ""]
    m = report["machine"]
    lines += [
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}; "
        f"Python {m['python']}, PostgreSQL {m.get('postgresql', '–')}, SQLite {m['sqlite']}; "
        f"userdesk {m['userdesk']} (FastAPI {m['fastapi']}, uvicorn {m['uvicorn']}, "
        f"SQLAlchemy {m['sqlalchemy']}), Django {m['django']} under gunicorn {m['gunicorn']}.",
        "",
        *_speed_line(m),
        "Latency in milliseconds, one request at a time over a kept-alive connection after a "
        f"warm-up; rps is what that one client got. List pages are {PAGE} rows on both.",
        "",
    ]
    for kind in kinds:
        for users in sorted(sizes, reverse=True):
            ours = _find(runs, "userdesk", kind, users)
            peer = _find(runs, "django-admin", kind, users)
            if not ours:
                continue
            lines += [
                f"### {kind}, {users:,} users",
                "",
                "| request | p50 | p95 | p99 | rps | hits | Django p50 | Django p95 "
                "| Django p50 ÷ ours |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for name, stats in ours["requests"].items():
                theirs = (peer or {}).get("requests", {}).get(PEER_EQUIVALENT.get(name, name))
                ratio = f"{theirs['p50'] / stats['p50']:,.0f}×" if theirs else "–"
                hits = f"{stats['hits']:,}" if stats.get("hits") is not None else ""
                lines.append(
                    f"| {TITLES.get(name, name)} | {_ms(stats['p50'])} | {_ms(stats['p95'])} "
                    f"| {_ms(stats['p99'])} | {stats['rps']:,.0f} | {hits} "
                    f"| {_ms(theirs['p50'] if theirs else None)} "
                    f"| {_ms(theirs['p95'] if theirs else None)} | {ratio} |"
                )
            signin = ours["signin"]
            lines += [
                "",
                f"Sign-in throughput: {signin['throughput']['rps']}/s with "
                f"{signin['throughput']['workers']} clients; raw argon2id "
                f"{signin['argon2']['verifies_per_second']}/s on {signin['argon2']['threads']} "
                f"threads (t={signin['argon2']['time_cost']}, "
                f"m={signin['argon2']['memory_kib']} KiB, p={signin['argon2']['parallelism']}): "
                f"{signin['share_of_bound']:.0%} of the bound. The server spent "
                f"{signin['throughput'].get('server_cpu_ms', '?')} ms of CPU per sign-in, of "
                f"which the hash is {signin['throughput'].get('hash_cpu_ms', '?')} ms. Creating "
                f"users: {ours['create_throughput']['rps']}/s with "
                f"{ours['create_throughput']['workers']} clients, "
                f"{ours['create_throughput'].get('server_cpu_ms', '?')} ms of server CPU each. "
                f"Server memory: {ours['rss_mb']} MB RSS after the run "
                f"(peak {ours['peak_rss_mb']} MB)"
                + (f"; Django worker {peer['rss_mb']} MB" if peer else "")
                + f". Load: {ours['load_seconds']} s"
                + (f" (Django: {peer['load_seconds']} s)" if peer else "")
                + ".",
                "",
            ]
    if len(sizes) > 1:
        lines += ["### Growth: p95 by N (userdesk)", ""]
        header = " | ".join(f"{kind} {users:,}" for kind in kinds for users in sizes)
        lines += [f"| request | {header} |", "|---|" + "---:|" * (len(kinds) * len(sizes))]
        names = next(r for r in runs if r["system"] == "userdesk")["requests"]
        for name in names:
            cells = []
            for kind in kinds:
                for users in sizes:
                    run = _find(runs, "userdesk", kind, users)
                    stats = (run or {}).get("requests", {}).get(name)
                    cells.append(_ms(stats["p95"] if stats else None))
            lines.append(f"| {TITLES.get(name, name)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += targets(report)
    return "\n".join(lines) + "\n"


READS = (*LIST_REQUESTS, "console_page")
SEARCHES_AND_DEEP = ("search_common", "search_rare", "search_short", "page_101", "last_page")


def targets(report: dict[str, Any]) -> list[str]:
    """The issue's targets, checked against the largest N measured."""
    runs = report["runs"]
    users = max(r["users"] for r in runs)
    smallest = min(r["users"] for r in runs)
    lines = [
        f"### Targets at {users:,} users",
        "",
        "| target | database | result |",
        "|---|---|---|",
    ]

    def row(target: str, kind: str, ok: bool, detail: str) -> None:
        lines.append(f"| {target} | {kind} | {'met' if ok else '**missed**'}: {detail} |")

    for kind in ("postgresql", "sqlite"):
        ours = _find(runs, "userdesk", kind, users)
        if not ours:
            continue
        req = ours["requests"]
        limit = 50 if kind == "postgresql" else 100
        worst = max((n for n in READS if n in req), key=lambda n: req[n]["p95"])
        row(
            f"every list, search, filter, sort and page p95 ≤ {limit} ms",
            kind,
            req[worst]["p95"] <= limit,
            f"slowest {worst} {_ms(req[worst]['p95'])} ms",
        )
        row(
            "User Info p95 ≤ 10 ms",
            kind,
            req["user_info"]["p95"] <= 10,
            f"{_ms(req['user_info']['p95'])} ms",
        )
        peer = _find(runs, "django-admin", kind, users)
        if peer:
            slowest_ratio = min(
                (
                    (peer["requests"][n]["p50"] / req[n]["p50"], n)
                    for n in SEARCHES_AND_DEEP
                    if n in req and n in peer["requests"]
                ),
                default=None,
            )
            if slowest_ratio:
                row(
                    "≥ 10× faster than Django on searches and deep pages (p50)",
                    kind,
                    slowest_ratio[0] >= 10,
                    f"least {slowest_ratio[0]:.0f}× ({slowest_ratio[1]})",
                )
            others = [
                (peer["requests"][PEER_EQUIVALENT.get(n, n)]["p50"] / req[n]["p50"], n)
                for n in (*READS, "user_info")
                if n in req
                and n not in SEARCHES_AND_DEEP
                and PEER_EQUIVALENT.get(n, n) in peer["requests"]
            ]
            if others:
                least = min(others)
                row(
                    "faster than Django on every other request (p50)",
                    kind,
                    least[0] > 1,
                    f"least {least[0]:.1f}× ({least[1]})",
                )
        small = _find(runs, "userdesk", kind, smallest)
        if small and smallest < users:
            growth = max(
                (req[n]["p95"] / small["requests"][n]["p95"], n)
                for n in req
                if n in small["requests"] and n != "sign_in"
            )
            row(
                f"p95 at {users:,} ≤ 2 × p95 at {smallest:,}",
                kind,
                growth[0] <= 2,
                f"most {growth[0]:.1f}× ({growth[1]})",
            )
        share = ours["signin"]["share_of_bound"]
        row("sign-in throughput ≥ 90% of raw argon2id", kind, share >= 0.9, f"{share:.0%}")
        if kind == "postgresql":
            rate = ours["create_throughput"]["rps"]
            row("creating users ≥ 200/s", kind, rate >= 200, f"{rate}/s")
        row(
            "RSS < 150 MB (after the run)",
            kind,
            ours["rss_mb"] < 150,
            f"{ours['rss_mb']} MB (peak {ours['peak_rss_mb']} MB)",
        )
    lines.append("")
    return lines


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    kinds = [k for k in ("postgresql", "sqlite") if any(r["database"] == k for r in runs)]
    figure, axes = plt.subplots(1, len(kinds), figsize=(7 * len(kinds), 6), squeeze=False)
    names = [*READS, "user_info", "create_user", "deactivate", "activate", "sign_in"]
    colours = plt.get_cmap("tab20")
    for ax, kind in zip(axes[0], kinds, strict=True):
        for index, name in enumerate(names):
            for system, style in (("userdesk", "-o"), ("django-admin", "--x")):
                key = PEER_EQUIVALENT.get(name, name) if system == "django-admin" else name
                if system == "django-admin" and name == "console_page":
                    continue
                points = sorted(
                    (r["users"], r["requests"][key]["p95"])
                    for r in runs
                    if r["system"] == system and r["database"] == kind and key in r["requests"]
                )
                if points:
                    label = name if system == "userdesk" else f"{name} (Django)"
                    ax.plot(*zip(*points, strict=True), style, color=colours(index), label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"p95 by number of users, {kind}")
        ax.set_xlabel("users")
        ax.set_ylabel("p95 ms")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "results.md").write_text(markdown(report))
    plot(report, out / "p95.png")


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--databases", nargs="+", default=["postgresql", "sqlite"], choices=["postgresql", "sqlite"]
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "USERDESK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--sqlite-dir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument(
        "--no-peer", dest="peer", action="store_false", help="Leave the Django admin out."
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--prefix", default="bench", help="Start of the databases' names (and SQLite files')."
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Keep userdesk databases an earlier run loaded (to iterate on one request; the "
        "published results come from fresh loads).",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        help="Time only these requests (names as in results.json); for iterating.",
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--samples", type=int, default=200, help="Most samples per request.")
    parser.add_argument("--min-samples", type=int, default=20)
    parser.add_argument("--peer-min-samples", type=int, default=10)
    parser.add_argument(
        "--budget",
        type=float,
        default=15.0,
        help="Seconds per request after which sampling stops (past the minimum).",
    )
    parser.add_argument("--throughput-seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    args.sqlite_dir.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": "python bench/run.py " + shlex.join(sys.argv[1:]),
        "machine": machine(args.postgres_url if "postgresql" in args.databases else None),
        "runs": [],
    }
    for users in sorted(args.users):
        marks = landmarks(users, args.seed)
        print(f"== {users:,} users: rare term {marks.rare!r}", flush=True)
        for kind in args.databases:
            ours = database_url(
                kind, "userdesk", users, args.postgres_url, args.sqlite_dir, args.prefix
            )
            report["runs"].append(run_userdesk(kind, ours, marks, args, logs))
            if not args.only:
                write(report, args.out)
            if args.peer:
                theirs = database_url(
                    kind, "django", users, args.postgres_url, args.sqlite_dir, args.prefix
                )
                report["runs"].append(run_peer(kind, theirs, marks, args, logs))
                if not args.only:
                    write(report, args.out)
    report["machine"]["python_loop_ms_end"] = python_speed()
    if args.only:
        print("(--only: a partial run, so bench/results is left as it was)")
        return
    write(report, args.out)
    print(f"results in {args.out}/results.md, results.json and p95.png")


if __name__ == "__main__":
    main()
