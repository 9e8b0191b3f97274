"""The Django admin's user changelist as userdesk's benchmark peer.

A minimal Django project (settings, urls, admin, wsgi) over the same generated population
as userdesk's benchmark (bench.population), on PostgreSQL or SQLite, and what the harness
calls to drive it:

    from bench.peers import django_admin

    django_admin.load(url, count, seed=1)          # fresh database, migrate, bulk load
    django_admin.server_command(port)               # gunicorn argv, one sync worker
    django_admin.server_environment(url)            # env additions for that process
    django_admin.sign_in(client)                    # httpx.Client -> signed-in admin session
    django_admin.requests(users, rare=..., common=..., short=...)   # name -> GET path

Importing this package configures no Django and imports neither Django nor httpx (the
server process imports it too, on its way to the settings).
"""

from bench.peers.django_admin.loading import ADMIN_PASSWORD, ADMIN_USERNAME, load
from bench.peers.django_admin.peer import (
    PER_PAGE,
    SignInError,
    changelist,
    last_page,
    page_path,
    requests,
    server_command,
    server_environment,
    sign_in,
    start_server,
    stop_server,
    wait_until_up,
)

__all__ = [
    "ADMIN_PASSWORD",
    "ADMIN_USERNAME",
    "PER_PAGE",
    "SignInError",
    "changelist",
    "last_page",
    "load",
    "page_path",
    "requests",
    "server_command",
    "server_environment",
    "sign_in",
    "start_server",
    "stop_server",
    "wait_until_up",
]
