"""The benchmark scripts still run: a tiny smoke run of each (numbers are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_the_benchmark_runs_end_to_end_at_ten_thousand_users(tmp_path: Path) -> None:
    """CI's smoke run of bench/run.py (the issue's N = 10,000): both databases, the Django
    admin beside userdesk, every request answered as expected, the report written. The
    numbers are not checked here; BENCHMARKS.md holds the real runs."""
    from tests.conftest import POSTGRES_URL

    if not POSTGRES_URL:
        pytest.fail("USERDESK_TEST_POSTGRES_URL is not set: the benchmark needs PostgreSQL")
    out = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--users",
            "10000",
            "--postgres-url",
            POSTGRES_URL,
            "--sqlite-dir",
            str(tmp_path),
            "--prefix",
            "smoke",
            "--samples",
            "10",
            "--min-samples",
            "5",
            "--peer-min-samples",
            "3",
            "--warmup",
            "2",
            "--budget",
            "2",
            "--throughput-seconds",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=base_environment(**FAST_HASHING),
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    # The machine's speed, at the start and the end, beside the numbers.
    assert report["machine"]["python_loop_ms"] > 0 < report["machine"]["python_loop_ms_end"]
    runs = {(r["system"], r["database"]): r for r in report["runs"]}
    assert set(runs) == {
        (system, kind)
        for system in ("userdesk", "django-admin")
        for kind in ("postgresql", "sqlite")
    }
    for kind in ("postgresql", "sqlite"):
        ours = runs[("userdesk", kind)]["requests"]
        # Every request the issue lists, named here rather than imported from the harness so
        # that one dropped from bench/run.py fails this test.
        assert set(ours) >= {
            "first_page",
            "search_common",
            "search_rare",
            "search_short",
            "role_and_status",
            "inactive",
            "sort_email_desc",
            "page_101",
            "last_page",
            "user_info",
            "console_page",
            "create_user",
            "deactivate",
            "activate",
            "sign_in",
        }
        # The population is 10,000 people, the harness's owner and its sign-in user.
        assert ours["first_page"]["hits"] == 10_002
        assert 0 < ours["search_rare"]["hits"] < 20
        assert ours["search_common"]["hits"] > 100
        theirs = runs[("django-admin", kind)]["requests"]
        assert set(theirs) >= {"first_page", "search_common", "last_page", "user_info"}
        assert runs[("userdesk", kind)]["signin"]["throughput"]["requests"] > 0
    table = (out / "results.md").read_text()
    assert "### postgresql, 10,000 users" in table and "### Targets at 10,000 users" in table
    assert "a fixed pure-Python loop" in table
    assert (out / "p95.png").read_bytes().startswith(b"\x89PNG")
