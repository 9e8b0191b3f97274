"""The `userdesk` command: serve, migrate, create-owner, tokens, users, settings.

Every command calls the same actions and queries as the API, as the system actor (the
operator at the console). Errors are one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError

from userdesk.actions import passwords as password_actions
from userdesk.actions import settings as settings_actions
from userdesk.actions import throttle
from userdesk.actions import tokens as token_actions
from userdesk.actions import two_factor as two_factor_actions
from userdesk.actions import users as user_actions
from userdesk.actions.context import Actor
from userdesk.actions.inputs import AdminPasswordReset, SettingsUpdate, UserCreate
from userdesk.config import Settings
from userdesk.db import Database
from userdesk.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from userdesk.models import UserStatus, UserType
from userdesk.queries import tokens as token_queries
from userdesk.queries import users as user_queries
from userdesk.queries import workspace as workspace_queries
from userdesk.services import Services
from userdesk.views import SettingsView, TokenView, UserListView, UserView

app = typer.Typer(
    help="userdesk: self-hosted user administration.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tokens_app = typer.Typer(help="Personal access tokens.", no_args_is_help=True)
users_app = typer.Typer(help="Users.", no_args_is_help=True)
settings_app = typer.Typer(help="Workspace settings.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
app.add_typer(users_app, name="users")
app.add_typer(settings_app, name="settings")

OPERATOR = Actor.system("cli")
EXIT_CODES: tuple[tuple[type[DomainError], int], ...] = (
    (InvalidInput, 3),
    (NotFound, 4),
    (PermissionDenied, 5),
    (Conflict, 6),
)
# Click uses 2 for usage errors; configuration and database trouble get their own code.
EXIT_UNUSABLE = 7
err = Console(stderr=True, highlight=False)
# Piped output gets wide tables, so ids are never cut short with an ellipsis.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 240)
T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"error: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """Settings from the environment; a bad USERDESK_* value is one line, not a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"USERDESK_{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        fail(f"invalid configuration: {problems}", EXIT_UNUSABLE)


def shown_url(url: str) -> str:
    """The database URL for messages: its password is a secret and never printed."""
    try:
        return repr(make_url(url).render_as_string(hide_password=True))
    except ArgumentError:
        return "URL (USERDESK_DATABASE_URL is not a valid URL)"


def run(work: Callable[[Database], Awaitable[T]], *, migrate: bool = True) -> T:
    """Open the database, apply migrations, do the work, and turn failures into one line."""
    settings = load_settings()
    try:
        database = Database(settings.database_url, Services.from_settings(settings))
    except (ArgumentError, ImportError, OSError) as exc:
        fail(f"database {shown_url(settings.database_url)} is not usable: {exc}", EXIT_UNUSABLE)

    async def main() -> T:
        try:
            if migrate:
                await database.migrate()
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except DomainError as exc:
        fail(exc.message, next((c for cls, c in EXIT_CODES if isinstance(exc, cls)), 1))
    except ValidationError as exc:
        fail(InvalidInput.from_pydantic(exc.errors(), drop_location=False).message, 3)
    except DBAPIError as exc:
        if str(getattr(exc.orig, "sqlstate", None) or "").startswith("40"):
            # Deadlock or serialization failure: another change got in the way; nothing was
            # written, and the same command will most likely succeed.
            fail(
                f"a concurrent change got in the way, nothing was changed; try again: "
                f"{_first_line(exc)}",
                6,
            )
        if isinstance(exc, OperationalError | InterfaceError):
            fail(
                f"database {shown_url(settings.database_url)} is not usable: {_first_line(exc)}",
                EXIT_UNUSABLE,
            )
        fail(f"the database refused the change: {_first_line(exc)}", 1)
    except OSError as exc:
        fail(
            f"database {shown_url(settings.database_url)} is not usable: {_first_line(exc)}",
            EXIT_UNUSABLE,
        )


def _first_line(exc: Exception) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def print_json(model: BaseModel | Sequence[BaseModel]) -> None:
    if not isinstance(model, BaseModel):
        data: Any = [m.model_dump(mode="json") for m in model]
    else:
        data = model.model_dump(mode="json")
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


# --- serve and migrate -------------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Apply every database migration (idempotent)."""

    async def work(_database: Database) -> None:
        return None

    run(work)
    out.print("database is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address [USERDESK_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [USERDESK_PORT].")] = None,
) -> None:
    """Migrate, create the first owner on an empty database, then serve the API."""
    import uvicorn

    from userdesk.http.app import create_app

    settings = load_settings()

    async def prepare(database: Database) -> tuple[UserView, str] | None:
        async with database.reader() as session:
            if await user_queries.owner_exists(session):
                return None  # the bootstrap settings are not even looked at
        password = database.services.randomness.password()
        try:
            data = UserCreate(
                name="Administrator",
                username=settings.bootstrap_owner_username,
                email=settings.bootstrap_owner_email,
                password=password,
            )
        except ValidationError as exc:
            problem = InvalidInput.from_pydantic(exc.errors(), drop_location=False)
            wrong = "; ".join(
                f"USERDESK_BOOTSTRAP_OWNER_{e.field.upper()}: {e.message}" for e in problem.errors
            )
            fail(f"invalid configuration: {wrong}", EXIT_UNUSABLE)
        async with database.transaction() as session:
            owner = await user_actions.create_first_owner(session, actor=OPERATOR, data=data)
            return (UserView.of(owner), password) if owner else None

    created = run(prepare)
    if created:
        owner, password = created
        out.print(
            "\n  First start: created the owner account (this password is shown only once)\n"
            f"    username: {owner.username}\n    email:    {owner.email}\n"
            f"    password: {password}\n"
            f"  Make an API token:  {sys.argv[0]} tokens create --user {owner.username} "
            "--name admin\n",
            markup=False,
        )
    bind_host = host or settings.host
    bind_port = port or settings.port
    _log_to_stderr()
    out.print(f"userdesk listening on http://{bind_host}:{bind_port} (API docs at /docs)")
    uvicorn.run(create_app(settings), host=bind_host, port=bind_port, log_level="info")


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then exit.")
    ] = False,
) -> None:
    """Deliver queued email and webhook events (run with USERDESK_MAIL_WORKER=false on the
    servers, or beside them: several workers never deliver one row at the same time)."""
    import logging
    import signal

    from userdesk.worker import OutboxWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def work(database: Database) -> int:
        outbox = OutboxWorker(database)
        if once:
            total = 0
            while handled := await outbox.run_once():
                total += handled
            return total
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        out.print("userdesk worker delivering email and webhooks; stop with Ctrl-C", markup=False)
        await outbox.run_until(stop)
        return 0

    handled = run(work)
    if once:
        out.print(f"handled {handled} outbox row(s): emails and webhook deliveries", markup=False)


def _log_to_stderr() -> None:
    """userdesk's own log lines (email delivery, the mail catcher's links) beside uvicorn's."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)-9s %(name)s: %(message)s"))
    logger = logging.getLogger("userdesk")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


@app.command("create-owner")
def create_owner(
    username: Annotated[str, typer.Option(help="Username of the new owner.")],
    email: Annotated[str, typer.Option(help="Email of the new owner.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "Administrator",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create an active owner. Without --password-stdin a password is generated and printed once."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None

    async def work(database: Database) -> tuple[UserView, str]:
        # An empty line on stdin is an empty password (rejected), never a silent generated one.
        chosen = password if password is not None else database.services.randomness.password()
        data = UserCreate(name=name, username=username, email=email, password=chosen)
        async with database.transaction() as session:
            owner = await user_actions.bootstrap_owner(session, actor=OPERATOR, data=data)
            return UserView.of(owner), chosen

    owner, chosen = run(work)
    out.print(f"created owner {owner.username} ({owner.id})", markup=False)
    if not password_stdin:
        out.print(f"password: {chosen}", markup=False)


# --- tokens ------------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option(help="Username the token acts as.")],
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")],
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Expire after this many days.")
    ] = None,
    permission: Annotated[
        list[str] | None,
        typer.Option(
            "--permission",
            help="Restrict the token to this permission (repeat for several); "
            "left out, the token may do all its user may.",
        ),
    ] = None,
) -> None:
    """Mint a token. The token is printed alone on the last line, once."""

    async def work(database: Database) -> tuple[TokenView, str]:
        expires = None
        if expires_in_days:
            expires = database.services.clock.now() + timedelta(days=expires_in_days)
        async with database.transaction() as session:
            token, secret = await token_actions.create_token(
                session,
                actor=OPERATOR,
                username=user,
                name=name,
                expires_at=expires,
                permissions=permission or None,
            )
            return TokenView.of(token), secret

    token, secret = run(work)
    out.print(f"created token {token.id} ({token.name}) for {user}; it is shown only once:")
    sys.stdout.write(secret + "\n")


@tokens_app.command("list")
def tokens_list(
    user: Annotated[str, typer.Option(help="Username whose tokens to list.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List a user's tokens (never their secrets)."""

    async def work(database: Database) -> list[TokenView]:
        async with database.reader() as session:
            owner = await user_queries.find_by_username(session, viewer=OPERATOR, username=user)
            rows = await token_queries.list_tokens(session, viewer=OPERATOR, user=owner)
            return [TokenView.of(t) for t in rows]

    tokens = run(work)
    if as_json:
        print_json(tokens)
        return
    table = Table("id", "name", "starts with", "created", "expires", "last used", "revoked")
    for t in tokens:
        table.add_row(
            t.id,
            t.name,
            t.hint,
            _when(t.created_at),
            _when(t.expires_at),
            _when(t.last_used_at),
            _when(t.revoked_at),
        )
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token's id.")]) -> None:
    """Revoke a token at once."""

    async def work(database: Database) -> TokenView:
        async with database.transaction() as session:
            token = await token_actions.revoke_token(session, actor=OPERATOR, token_id=token_id)
            return TokenView.of(token)

    token = run(work)
    out.print(f"revoked token {token.id} ({token.name})", markup=False)


# --- users -------------------------------------------------------------------------------


async def _user_id(database: Database, who: str) -> str:
    """Accept a username or an id."""
    async with database.reader() as session:
        try:
            user = await user_queries.find_by_username(session, viewer=OPERATOR, username=who)
        except NotFound:
            try:
                user = await user_queries.get_user(session, viewer=OPERATOR, user_id=who)
            except NotFound:
                raise NotFound(f"no user with username or id {who}") from None
        return user.public_id


@users_app.command("list")
def users_list(
    status: Annotated[UserStatus | None, typer.Option(help="Only this status.")] = None,
    q: Annotated[str | None, typer.Option("--search", "-q", help="Search text.")] = None,
    role: Annotated[str | None, typer.Option(help="Only users with this role.")] = None,
    sort: Annotated[str | None, typer.Option(help="Sort field, '-' for descending.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option(help="Continue after this cursor.")] = None,
    before: Annotated[
        str | None, typer.Option(help="The page before this cursor (a prev_cursor).")
    ] = None,
    last: Annotated[bool, typer.Option("--last", help="The last page.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List users like the Users page: search, role filter, status, sort, paging both ways."""
    if sum(bool(x) for x in (cursor, before, last)) > 1:
        fail("give at most one of --cursor, --before and --last", dict(EXIT_CODES)[InvalidInput])

    async def work(database: Database) -> UserListView:
        async with database.reader() as session:
            window = await user_queries.browse_users(
                session,
                viewer=OPERATOR,
                status=status,
                q=q,
                role=role,
                sort=sort,
                limit=limit,
                after=cursor,
                before=before,
                last=last,
            )
            seats = await workspace_queries.get_seats(session, viewer=OPERATOR)
            return UserListView.of_window(window, seats)

    page = run(work)
    if as_json:
        print_json(page)
        return
    table = Table("id", "name", "username", "email", "roles", "status", "last login")
    for v in page.items:
        table.add_row(
            v.id,
            v.name,
            v.username,
            v.email,
            ", ".join(v.roles),
            v.status,
            _when(v.last_login_at),
        )
    out.print(table)
    counts = page.counts
    out.print(
        f"all {counts.all} · pending {counts.pending} · active {counts.active} · "
        f"deactivated {counts.deactivated}",
        markup=False,
    )
    if page.next_cursor:
        out.print(f"more: --cursor {page.next_cursor}", markup=False)


@users_app.command("show")
def users_show(who: Annotated[str, typer.Argument(help="Username or id.")]) -> None:
    """Show one user as JSON."""

    async def work(database: Database) -> UserView:
        user_id = await _user_id(database, who)
        async with database.reader() as session:
            return UserView.of(
                await user_queries.get_user(session, viewer=OPERATOR, user_id=user_id)
            )

    print_json(run(work))


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option()],
    email: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    role: Annotated[list[str] | None, typer.Option(help="A role; repeat for several.")] = None,
    bot: Annotated[bool, typer.Option("--bot", help="Create a bot account.")] = False,
    verified: Annotated[bool, typer.Option("--verified", help="Mark the email verified.")] = False,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    require_password_change: Annotated[bool, typer.Option("--require-password-change")] = False,
    welcome_email: Annotated[bool, typer.Option("--welcome-email")] = False,
) -> None:
    """Create a user (pending until their first sign-in; bots start active)."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None

    async def work(database: Database) -> UserView:
        data = UserCreate(
            username=username,
            email=email,
            name=name,
            roles=role or None,
            type=UserType.BOT if bot else UserType.HUMAN,
            email_verified=verified,
            password=password,
            require_password_change=require_password_change,
            send_welcome_email=welcome_email,
        )
        async with database.transaction() as session:
            return UserView.of(await user_actions.create_user(session, actor=OPERATOR, data=data))

    user = run(work)
    out.print(f"created {user.username} ({user.id}), status {user.status}", markup=False)


def _lifecycle(who: str, action: Callable[..., Awaitable[Any]], verb: str) -> None:
    async def work(database: Database) -> None:
        user_id = await _user_id(database, who)
        async with database.transaction() as session:
            await action(session, actor=OPERATOR, user_id=user_id)

    run(work)
    out.print(f"{verb} {who}", markup=False)


@users_app.command("deactivate")
def users_deactivate(who: Annotated[str, typer.Argument(help="Username or id.")]) -> None:
    """Deactivate: data kept, access revoked."""
    _lifecycle(who, user_actions.deactivate_user, "deactivated")


@users_app.command("activate")
def users_activate(who: Annotated[str, typer.Argument(help="Username or id.")]) -> None:
    """Activate a deactivated user (takes a seat)."""
    _lifecycle(who, user_actions.activate_user, "activated")


@users_app.command("unlock")
def users_unlock(who: Annotated[str, typer.Argument(help="Username or id.")]) -> None:
    """End a sign-in lockout and forget the user's failed sign-ins."""
    _lifecycle(who, throttle.unlock, "unlocked")


@users_app.command("reset-password")
def users_reset_password(
    who: Annotated[str, typer.Argument(help="Username or id.")],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Set the password read from standard input (policy-checked) instead of "
            "emailing a random one.",
        ),
    ] = False,
    require_change: Annotated[
        bool,
        typer.Option(
            "--require-change/--no-require-change",
            help="With --password-stdin: must the user change it at the next sign-in.",
        ),
    ] = True,
) -> None:
    """Reset a password: a random one emailed to the user (who must change it), or one read
    from stdin. Every session and token of the user ends."""
    chosen = sys.stdin.readline().rstrip("\r\n") if password_stdin else None

    async def work(database: Database) -> None:
        data = AdminPasswordReset(
            mode="manual" if password_stdin else "random",
            password=chosen,
            require_password_change=require_change,
        )
        user_id = await _user_id(database, who)
        async with database.transaction() as session:
            await password_actions.reset_password(
                session, actor=OPERATOR, user_id=user_id, data=data
            )

    run(work)
    how = "set" if password_stdin else "emailed a new random password to"
    out.print(f"password reset: {how} {who}; their sessions and tokens ended", markup=False)


@users_app.command("delete")
def users_delete(
    who: Annotated[str, typer.Argument(help="Username or id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete permanently."""
    if not yes and not typer.confirm(f"Delete {who} permanently?"):
        fail("not deleted", 1)
    _lifecycle(who, user_actions.delete_user, "deleted")


@users_app.command("reset-2fa")
def users_reset_two_factor(who: Annotated[str, typer.Argument(help="Username or id.")]) -> None:
    """Remove the user's 2FA (key and recovery codes); ends their sessions and tokens."""
    _lifecycle(who, two_factor_actions.reset_two_factor, "reset 2FA of")


# --- settings ----------------------------------------------------------------------------

SETTING_NAMES = tuple(SettingsUpdate.model_fields)
SHOWN_SETTINGS = tuple(SettingsView.model_fields)  # no smtp_password: it is write-only
LIST_SETTINGS = ("two_factor_required_roles",)
# Settings that "none" clears (others take "none" literally, like smtp_security none).
CLEARABLE_SETTINGS = (
    "seat_limit",
    "password_max_repeated",
    "two_factor_required_roles",
    "smtp_host",
    "smtp_port",
    "smtp_username",
    "smtp_password",
    "mail_from_address",
    "mail_from_name",
)


@settings_app.command("get")
def settings_get(
    key: Annotated[str | None, typer.Argument(help="One setting; all when left out.")] = None,
) -> None:
    """Print the workspace settings as JSON, or one value."""
    if key is not None and key not in SHOWN_SETTINGS:
        fail(f"unknown setting {key!r}; settings are {', '.join(SHOWN_SETTINGS)}", 3)

    async def work(database: Database) -> SettingsView:
        async with database.reader() as session:
            return SettingsView.of(await workspace_queries.get_settings(session, viewer=OPERATOR))

    view = run(work)
    if key is None:
        print_json(view)
    else:
        value = getattr(view, key)
        sys.stdout.write(("none" if value is None else str(value)) + "\n")


@settings_app.command("set")
def settings_set(
    key: Annotated[str, typer.Argument(help="A setting's name, as `settings get` lists them.")],
    value: Annotated[
        str,
        typer.Argument(
            help="The new value: true/false, a number, 'none' to clear seat_limit or "
            "password_max_repeated, a comma-separated list of roles for "
            "two_factor_required_roles."
        ),
    ],
) -> None:
    """Change one workspace setting."""
    if key not in SETTING_NAMES:
        fail(f"unknown setting {key!r}; settings are {', '.join(SETTING_NAMES)}", 3)
    parsed: Any = value
    if key in CLEARABLE_SETTINGS and value.lower() in ("none", "null", "unlimited", ""):
        parsed = [] if key in LIST_SETTINGS else None
    elif key in LIST_SETTINGS:
        parsed = [part.strip() for part in value.split(",") if part.strip()]

    async def work(database: Database) -> SettingsView:
        data = SettingsUpdate.model_validate({key: parsed})
        async with database.transaction() as session:
            workspace = await settings_actions.update_settings(session, actor=OPERATOR, data=data)
            return SettingsView.of(workspace)

    print_json(run(work))


def main() -> None:
    app()
