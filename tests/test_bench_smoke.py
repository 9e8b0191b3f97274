"""The benchmark scripts still run: a tiny smoke run of each (numbers are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.processes import FAST_HASHING, base_environment

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _run(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=base_environment(**FAST_HASHING),
        cwd=cwd,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_password_hash_bench_runs(tmp_path: Path) -> None:
    out = _run(str(BENCH / "password_hash.py"), "--runs", "3", cwd=tmp_path)
    assert "verify p50" in out


def test_quick_list_bench_runs_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    out = _run(
        str(BENCH / "quick_list.py"), "--url", url, "--users", "300", "--repeat", "1", cwd=tmp_path
    )
    assert "first page" in out


def test_mail_worker_bench_runs(tmp_path: Path) -> None:
    out = _run(str(BENCH / "mail_worker.py"), "--emails", "5", cwd=tmp_path)
    assert "5 emails, 1 worker(s) on sqlite" in out


def test_population_load_runs_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'population.db'}"
    out = _run(str(BENCH / "population.py"), "--url", url, "--users", "500", cwd=tmp_path)
    assert "loaded 500 users" in out
