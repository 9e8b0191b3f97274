"""Database URLs for the Django admin peer, parsed by hand (no dj-database-url).

Plain Python: the harness imports this without configuring Django.

    postgresql://user:password@host:port/name   (also postgres://, postgresql+psycopg://)
    sqlite:////absolute/path.db   sqlite:///relative/path.db
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def sqlite_file(url: str) -> Path | None:
    """The file a sqlite:/// URL names, made absolute; None for PostgreSQL URLs."""
    if not url.startswith("sqlite:///"):
        if url.startswith("sqlite:"):
            raise ValueError(f"expected sqlite:///path, got {url!r}")
        return None
    path = url[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        raise ValueError("the peer needs a SQLite file, not an in-memory database")
    return Path(path).resolve()


def absolute(url: str) -> str:
    """The same URL with a SQLite path made absolute (the server may run elsewhere)."""
    path = sqlite_file(url)
    return f"sqlite:///{path}" if path is not None else url


def postgres_parts(url: str) -> dict[str, Any]:
    """NAME, USER, PASSWORD, HOST, PORT of a PostgreSQL URL."""
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ValueError(f"not a PostgreSQL or SQLite URL: {url!r}")
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ValueError(f"no database name in {url!r}")
    return {
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


def postgres_conninfo(url: str) -> str:
    """A libpq URL psycopg accepts (no SQLAlchemy driver suffix)."""
    parts = urlsplit(url)
    return parts._replace(scheme="postgresql").geturl()


def django_database(url: str) -> dict[str, Any]:
    """settings.DATABASES["default"] for a URL, configured like a production deployment."""
    path = sqlite_file(url)
    if path is not None:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            # Like userdesk's own SQLite connections (and Django 5.1+'s advice for production):
            # WAL, synchronous=NORMAL, a busy timeout, writers take the lock up front.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 15,
            },
            "CONN_MAX_AGE": None,
        }
    return {
        "ENGINE": "django.db.backends.postgresql",
        **postgres_parts(url),
        # Persistent connections: one per worker, kept for the life of the process.
        "CONN_MAX_AGE": None,
    }
