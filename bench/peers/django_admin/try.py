"""Try the peer by hand: load, start gunicorn, sign in, GET every request once.

    python -m bench.peers.django_admin.try --url sqlite:////tmp/peer.db --users 10000
    python -m bench.peers.django_admin.try --url postgresql://postgres@127.0.0.1:5432/peer_x \\
        --users 10000 --no-load

Prints each request's status, milliseconds (one cold GET, then the best of --repeat more)
and the result count the page shows.
"""

from __future__ import annotations

import argparse
import re
import socket
import time

import httpx

from bench.peers.django_admin.loading import load
from bench.peers.django_admin.peer import (
    requests,
    sign_in,
    start_server,
    stop_server,
    wait_until_up,
)

# The changelist's own count, under the page links: "301 users".
COUNT = re.compile(r"^(\d+) users?$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def shown_count(html: str) -> str:
    found = COUNT.search(html)
    return found.group(1) if found else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-load", action="store_true", help="use the database as it is")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rare", default="avsen12")
    parser.add_argument("--common", default="smith")
    parser.add_argument("--short", default="zo")
    args = parser.parse_args()
    if not args.no_load:
        load(args.url, args.users, seed=args.seed)
    port = free_port()
    process = start_server(args.url, port)
    try:
        wait_until_up(process, port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            sign_in(client)
            paths = requests(args.users, rare=args.rare, common=args.common, short=args.short)
            print(f"{'request':<16} {'status':>6} {'cold ms':>9} {'best ms':>9} {'count':>8}  path")
            for name, path in paths.items():
                times = []
                for _ in range(1 + args.repeat):
                    started = time.perf_counter()
                    answer = client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                best = min(times[1:]) if args.repeat else times[0]
                print(
                    f"{name:<16} {answer.status_code:>6} {times[0]:>9.1f} {best:>9.1f} "
                    f"{shown_count(answer.text):>8}  {path}",
                    flush=True,
                )
    finally:
        stop_server(process)


if __name__ == "__main__":
    main()
