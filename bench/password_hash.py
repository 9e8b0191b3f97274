"""How long one argon2id verify takes at userdesk's configured parameters.

Sign-in costs one verify (an unknown login costs one too, against a decoy hash), so this
bounds sign-ins per second per core. Reads the same USERDESK_ARGON2_* settings as the server.

    python bench/password_hash.py [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from userdesk.config import Settings
from userdesk.security.passwords import Passwords


async def measure(runs: int) -> None:
    settings = Settings()
    passwords = Passwords(settings)
    hashed = await passwords.hash("a long enough passphrase")
    for _ in range(3):  # warm-up
        await passwords.verify(hashed, "a long enough passphrase")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        assert await passwords.verify(hashed, "a long enough passphrase")
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p50 = statistics.median(times)
    print(
        f"argon2id t={settings.argon2_time_cost} m={settings.argon2_memory_kib} KiB "
        f"p={settings.argon2_parallelism}: verify p50 {p50:.1f} ms, "
        f"p95 {times[int(len(times) * 0.95) - 1]:.1f} ms over {runs} runs; "
        f"about {1000 / p50:.0f} verifies per second per core"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    asyncio.run(measure(parser.parse_args().runs))


if __name__ == "__main__":
    main()
