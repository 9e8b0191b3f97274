"""What the benchmark harness needs to drive the Django admin peer over HTTP.

    port = free port
    server = subprocess.Popen(server_command(port), env=os.environ | server_environment(url))
    ...poll until http://127.0.0.1:<port>/admin/login/ answers...
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        sign_in(client)
        for name, path in requests(users, rare="avsen12", common="smith", short="zo").items():
            client.get(path)

Nothing here configures Django in the calling process.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from typing import IO, TYPE_CHECKING
from urllib.parse import urlencode

from bench.peers.django_admin.loading import ADMIN_PASSWORD, ADMIN_USERNAME, subprocess_environment

if TYPE_CHECKING:
    import httpx

CHANGELIST = "/admin/auth/user/"
LOGIN = "/admin/login/"
PER_PAGE = 100  # ModelAdmin.list_per_page, left at Django's default
# The changelist's columns as ChangeList numbers them for `o=`: the action checkbox comes
# first (the admin has actions), then list_display. So email is column 2.
COLUMNS = ("action_checkbox", "username", "email", "first_name", "last_name", "is_staff")
# Workers silent longer than this are killed; gunicorn's default, 30 s, would kill the
# slowest changelists at a million users instead of timing them.
WORKER_TIMEOUT = 600


def server_command(port: int) -> list[str]:
    """argv of the peer as a real server: gunicorn, one sync worker (the default
    deployment, one process like userdesk's one uvicorn process), no access log, on
    127.0.0.1:`port`. Run it with `server_environment(url)` added to the environment."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "bench.peers.django_admin.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--worker-class",
        "sync",
        "--timeout",
        str(WORKER_TIMEOUT),
        # No access log is gunicorn's default; the error log goes to stderr.
        "--error-logfile",
        "-",
        # Gunicorn 27 opens a control socket at ~/.gunicorn/gunicorn.ctl by default, one
        # path for every server: two peers at once would fight over it.
        "--no-control-socket",
    ]


def server_environment(url: str) -> dict[str, str]:
    """Environment additions for `server_command`: PEER_DATABASE_URL (a SQLite path made
    absolute), DJANGO_SETTINGS_MODULE, and PYTHONPATH with the repository root first."""
    return subprocess_environment(url)


Output = IO[bytes] | int | None


def start_server(
    url: str, port: int, stdout: Output = None, stderr: Output = None
) -> subprocess.Popen[bytes]:
    """Popen(server_command(port)) with server_environment(url), as the harness does."""
    return subprocess.Popen(
        server_command(port),
        env=os.environ | server_environment(url),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
    )


def wait_until_up(process: subprocess.Popen[bytes], port: int, timeout: float = 30) -> None:
    """Poll GET /admin/login/ until it answers 200; raise if the server exits or is late."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the Django admin peer exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{LOGIN}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Django admin peer did not answer within {timeout} s")
        time.sleep(0.1)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL after 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class SignInError(RuntimeError):
    pass


def sign_in(
    client: httpx.Client, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD
) -> None:
    """Sign `client` (base_url = the peer) in to the admin as the load's superuser, through
    the login form with its CSRF token, as a browser would. Raises SignInError if the
    client does not end up with a session that opens /admin/."""
    form = client.get(LOGIN)
    if form.status_code != 200:
        raise SignInError(f"GET {LOGIN} answered {form.status_code}")
    token = client.cookies.get("csrftoken")
    if not token:
        raise SignInError(f"GET {LOGIN} set no csrftoken cookie")
    answer = client.post(
        f"{LOGIN}?next=/admin/",
        data={
            "csrfmiddlewaretoken": token,
            "username": username,
            "password": password,
            "next": "/admin/",
        },
    )
    if answer.status_code != 302 or answer.headers.get("location") != "/admin/":
        why = "wrong username or password" if answer.status_code == 200 else "unexpected"
        raise SignInError(
            f"POST {LOGIN} answered {answer.status_code} "
            f"(location {answer.headers.get('location')!r}): {why}"
        )
    if not client.cookies.get("sessionid"):
        raise SignInError(f"POST {LOGIN} set no sessionid cookie")
    home = client.get("/admin/")
    if home.status_code != 200:
        raise SignInError(
            f"signed in, but /admin/ answered {home.status_code} "
            f"(location {home.headers.get('location')!r})"
        )


def changelist(**params: str | int) -> str:
    """The user changelist's path with these query parameters."""
    return f"{CHANGELIST}?{urlencode(params)}" if params else CHANGELIST


def page_path(number: int) -> str:
    """Page `number` of the changelist. The admin's `p` is 1-based since Django 4.0 (p=1 is
    the first page); p=0 and pages past the end answer 302 to ?e=1 (Django 5.2)."""
    return changelist(p=number)


def last_page(users: int) -> int:
    """The number of the last page once `users` people and the superuser are loaded."""
    return max(1, math.ceil((users + 1) / PER_PAGE))


def requests(users: int, rare: str, common: str, short: str) -> dict[str, str]:
    """The changelist requests equivalent to those the harness times on userdesk, by name.

    - first_page: /admin/auth/user/, the first 100 by email (ModelAdmin.ordering), with
      the count of all users.
    - search_common, search_rare, search_short: ?q=<term>. The admin ORs
      `icontains` over username, first_name, last_name and email: UPPER(col) LIKE
      UPPER('%term%') on PostgreSQL, LIKE on SQLite (which folds ASCII case only). No accent
      folding on either, unlike userdesk's search.
    - role_and_status: ?is_active__exact=1&is_staff__exact=1, the nearest to userdesk's
      role filter + status tab: auth_user has no roles; is_staff is what the load derives
      from the admin and user-manager roles, is_active from the active status.
    - inactive: ?is_active__exact=0: deactivated and pending people (the admin has no
      third status).
    - sort_email_desc: ?o=-2: column 2 descending; the `o` index counts the action checkbox
      column first, so 0 is the checkbox, 1 username, 2 email.
    - page_101: ?p=101; `p` is 1-based in this Django (5.2), so this is rows 10,001-10,100.
      With fewer than 10,001 rows it is past the end: 302 to ?e=1, not a page.
    - last_page: ?p=<ceil((users + 1) / 100)>: users + 1 rows with the superuser.
    - user_info: /admin/auth/user/<users // 2>/change/, the change form of the person at
      the middle of the load (the load gives ids 1..users in order).
    """
    return {
        "first_page": CHANGELIST,
        "search_common": changelist(q=common),
        "search_rare": changelist(q=rare),
        "search_short": changelist(q=short),
        "role_and_status": changelist(is_active__exact=1, is_staff__exact=1),
        "inactive": changelist(is_active__exact=0),
        "sort_email_desc": changelist(o=f"-{COLUMNS.index('email')}"),
        "page_101": page_path(101),
        "last_page": page_path(last_page(users)),
        "user_info": f"{CHANGELIST}{max(1, users // 2)}/change/",
    }
