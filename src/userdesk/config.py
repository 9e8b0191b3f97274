"""Settings, read once from USERDESK_* environment variables and passed in explicitly."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/userdesk.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="USERDESK_", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL. postgresql://... and sqlite:///... are turned into their "
        "async drivers (psycopg, aiosqlite).",
    )
    host: str = Field("127.0.0.1", description="Address `userdesk serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `userdesk serve` listens on.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted; larger ones get 413."
    )
    database_pool_size: int = Field(
        10, ge=1, description="Connections kept per process (PostgreSQL)."
    )
    cookie_secure: bool = Field(
        True,
        description="Mark the session cookie Secure (HTTPS only). Browsers accept Secure "
        "cookies from http://localhost; set false to sign in over plain HTTP elsewhere.",
    )
    bootstrap_owner_username: str = Field(
        "admin", description="Username of the owner `serve` creates on an empty database."
    )
    bootstrap_owner_email: str = Field(
        "admin@example.com", description="Email of the owner `serve` creates on an empty database."
    )
    secret_key: SecretStr | None = Field(
        None,
        description="The key that seals stored secrets (TOTP keys, queued emails' passwords). "
        "Unset, a key file is used (created on first start). Set the same value in every "
        "process of a deployment.",
    )
    secret_key_file: Path = Field(
        Path("./var/secret.key"),
        description="Where the generated key is kept when USERDESK_SECRET_KEY is unset.",
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="The address people reach userdesk at; links in emails start with it.",
    )
    mail_worker: bool = Field(
        True,
        description="Deliver queued email and webhook events from inside `serve`. Set false "
        "when separate `userdesk worker` processes deliver them.",
    )
    argon2_time_cost: int = Field(2, ge=1, description="argon2id iterations.")
    argon2_memory_kib: int = Field(19_456, ge=8, description="argon2id memory in KiB.")
    argon2_parallelism: int = Field(1, ge=1, description="argon2id lanes.")


def secret_key_of(settings: Settings) -> str:
    from userdesk.security.sealing import key_from_file

    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    return key_from_file(settings.secret_key_file)


def async_database_url(url: str) -> str:
    """Map a plain SQLAlchemy URL to the async driver userdesk uses for that database."""
    for plain, driver in (
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL points at, or None for other databases and in-memory SQLite."""
    url = async_database_url(url)
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)
