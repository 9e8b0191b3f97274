"""Input models for the actions: every field rule lives here, once, for every adapter."""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from functools import cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from userdesk.models import UserType
from userdesk.security.addresses import ascii_host

USERNAME_MIN, USERNAME_MAX = 2, 64
NAME_MAX = 100
NICKNAME_MAX = 60
STATUS_MESSAGE_MAX = 120
BIO_MAX = 1000
PASSWORD_HARD_MAX = 1024
ROLE_NAME_MAX = 64
USERNAME_PUNCTUATION = "._-"
SORT_KEY_MAX = 200


def nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def fold(value: str) -> str:
    """The comparison key of names, usernames and emails: NFC, then Unicode case folding."""
    return nfc(nfc(value).casefold())


def role_key(value: str) -> str:
    """The comparison key of role names and display names, one namespace: NFKC, case
    folded, NFKC again (Unicode's NFKC_Casefold, near enough), so fullwidth "ＯＷＮＥＲ" is
    "owner". Look-alikes NFKC keeps apart (a dotted capital I, "Öwner", Cyrillic letters)
    stay distinct."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


def email_key(email: str) -> str:
    """The comparison key of a (validated, normalised) email address."""
    return email.lower()


def sort_key(value: str) -> str:
    """How names sort: case-folded with accents set aside, so Émile files beside Emma.
    Compared bytewise (COLLATE "C" on PostgreSQL), so both databases order alike."""
    decomposed = unicodedata.normalize("NFKD", fold(value))
    key = unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )
    # Compatibility forms can expand a lot (one ligature to 18 letters); the first 200
    # characters order any real name, and the id breaks what ties remain.
    return key[:SORT_KEY_MAX]


def _no_control_characters(value: str, *, allow_newlines: bool = False) -> str:
    for char in value:
        if allow_newlines and char in "\n\t":
            continue
        if unicodedata.category(char).startswith("C"):
            raise PydanticCustomError(
                "control_character", "must not contain control or invisible format characters"
            )
    return value


def _text(value: Any) -> Any:
    """Strip surrounding white space and normalise to NFC before any length rule."""
    return nfc(value.strip()) if isinstance(value, str) else value


def _check_username(value: str) -> str:
    if not USERNAME_MIN <= len(value) <= USERNAME_MAX:
        raise PydanticCustomError(
            "username_length",
            "must be {min} to {max} characters long",
            {"min": USERNAME_MIN, "max": USERNAME_MAX},
        )
    if not value[0].isalnum():
        raise PydanticCustomError("username_start", "must start with a letter or a digit")
    if any(not (c.isalnum() or c in USERNAME_PUNCTUATION) for c in value):
        raise PydanticCustomError(
            "username_charset", "may contain only letters, digits, '.', '_' and '-'"
        )
    return value


def _check_email(value: str) -> str:
    if len(value) > 254:
        raise PydanticCustomError("email_length", "must be at most 254 characters long")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise PydanticCustomError(
            "email_syntax", "is not a valid email address: {reason}", {"reason": str(exc)}
        ) from None


@cache
def known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_timezone(value: str) -> str:
    if value not in known_timezones():
        raise PydanticCustomError(
            "timezone_unknown", "must be an IANA time zone name such as Europe/Paris or UTC"
        )
    return value


def _check_voip(value: str) -> str:
    if not 2 <= len(value) <= 20 or any(c not in "0123456789*#+" for c in value):
        raise PydanticCustomError(
            "voip_extension_format", "must be 2 to 20 digits (also '*', '#' and '+')"
        )
    return value


def _check_avatar_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or len(value) > 2048 or " " in value:
        raise PydanticCustomError(
            "avatar_url_format", "must be an http or https URL of at most 2048 characters"
        )
    return value


def _check_password(value: str) -> str:
    # Only a sanity bound here: the workspace's policy (actions/passwords.py) judges the rest.
    if not 1 <= len(value) <= PASSWORD_HARD_MAX:
        raise PydanticCustomError(
            "password_length",
            "must be 1 to {max} characters long",
            {"max": PASSWORD_HARD_MAX},
        )
    return value


def _check_smtp_host(value: str) -> str:
    if not 1 <= len(value) <= 253 or any(
        not (c.isascii() and (c.isalnum() or c in ".-:[]")) for c in value
    ):
        raise PydanticCustomError(
            "smtp_host_format", "must be a host name or IP address, such as smtp.example.com"
        )
    return value


def _check_role_name(value: str) -> str:
    if (
        not 2 <= len(value) <= ROLE_NAME_MAX
        or not value[0].isalpha()
        or any(not (c.isascii() and (c.isalnum() or c in "-_")) or c.isupper() for c in value)
    ):
        raise PydanticCustomError(
            "role_name_format",
            "must be 2 to 64 lowercase ASCII letters, digits, '-' or '_', starting with a letter",
        )
    return value


def _length(minimum: int, maximum: int) -> AfterValidator:
    def check(value: str) -> str:
        if not minimum <= len(value) <= maximum:
            if minimum and not value:
                raise PydanticCustomError("required", "must not be empty")
            raise PydanticCustomError(
                "length",
                "must be {min} to {max} characters long",
                {"min": minimum, "max": maximum},
            )
        return value

    return AfterValidator(check)


def _single_line(max_length: int) -> Any:
    return [BeforeValidator(_text), _length(1, max_length), AfterValidator(_no_control_characters)]


Username = Annotated[str, BeforeValidator(_text), AfterValidator(_check_username)]
Email = Annotated[str, BeforeValidator(_text), AfterValidator(_check_email)]
Name = Annotated[str, *_single_line(NAME_MAX)]
Nickname = Annotated[str, *_single_line(NICKNAME_MAX)]
# A role's display name: what identity providers name groups ("Sales Team"), any text.
RoleDisplayName = Annotated[str, *_single_line(256)]
ExternalId = Annotated[str, *_single_line(255)]
StatusMessage = Annotated[str, *_single_line(STATUS_MESSAGE_MAX)]
Bio = Annotated[
    str,
    BeforeValidator(_text),
    _length(0, BIO_MAX),
    AfterValidator(lambda v: _no_control_characters(v, allow_newlines=True)),
]
Timezone = Annotated[str, BeforeValidator(_text), AfterValidator(_check_timezone)]
VoipExtension = Annotated[str, BeforeValidator(_text), AfterValidator(_check_voip)]
AvatarUrl = Annotated[str, BeforeValidator(_text), AfterValidator(_check_avatar_url)]
Password = Annotated[str, AfterValidator(_check_password)]
RoleName = Annotated[str, BeforeValidator(_text), AfterValidator(_check_role_name)]
SmtpHost = Annotated[str, BeforeValidator(_text), AfterValidator(_check_smtp_host)]
Description = Annotated[
    str,
    BeforeValidator(_text),
    _length(0, 500),
    AfterValidator(lambda v: _no_control_characters(v, allow_newlines=True)),
]
RoleList = Annotated[list[RoleName], Field(min_length=1, max_length=50)]


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("null_not_allowed", "cannot be null; leave it out to keep it")
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """No field of any input holds a NUL character (PostgreSQL cannot store one, and no
        name, password or key needs one), whatever else its own rules allow."""
        if _has_nul(value):
            raise PydanticCustomError("nul_character", "must not contain NUL characters")
        return value


class ProfileFields(_Input):
    """Fields a user may change on their own profile (with profile.edit)."""

    name: Name | None = None
    given_name: Name | None = None
    family_name: Name | None = None
    nickname: Nickname | None = None
    bio: Bio | None = None
    status_message: StatusMessage | None = None
    timezone: Timezone | None = None
    avatar_url: AvatarUrl | None = None


SELF_SERVICE_FIELDS = frozenset(ProfileFields.model_fields)

_LOCALE = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")


def _check_locale(value: str) -> str:
    if len(value) > 35 or not _LOCALE.fullmatch(value):
        raise PydanticCustomError(
            "locale_format", "must be a language tag such as en, en-US or pt_BR"
        )
    return value


Locale = Annotated[str, BeforeValidator(_text), AfterValidator(_check_locale)]


class DirectoryFields(_Input):
    """What an organisation's directory says of a user (identity providers send these over
    SCIM). Admins' fields (users.edit), never self-service. `name_derived`: `name` was made
    from other names, not given (a provider sent no displayName); setting `name` alone
    clears it. `manager` is the manager's user id."""

    external_id: Annotated[str, *_single_line(255)] | None = None
    name_derived: bool | None = None
    formatted_name: Annotated[str, *_single_line(200)] | None = None
    title: Annotated[str, *_single_line(200)] | None = None
    employment_type: Annotated[str, *_single_line(100)] | None = None
    locale: Locale | None = None
    email_type: Annotated[str, *_single_line(20)] | None = None
    email_primary: bool | None = None
    employee_number: Annotated[str, *_single_line(100)] | None = None
    department: Annotated[str, *_single_line(200)] | None = None
    organization: Annotated[str, *_single_line(200)] | None = None
    manager: Annotated[str, _length(1, 64)] | None = None


DIRECTORY_FIELDS = frozenset(DirectoryFields.model_fields)


class UserCreate(ProfileFields, DirectoryFields):
    name: Name
    username: Username
    email: Email
    email_verified: bool = False
    voip_extension: VoipExtension | None = None
    type: UserType = UserType.HUMAN
    password: Password | None = None
    require_password_change: bool = False
    roles: RoleList | None = None
    send_welcome_email: bool = False


class UserUpdate(ProfileFields, DirectoryFields):
    """A partial update: only the fields present are changed; null clears an optional one."""

    username: Username | None = None
    email: Email | None = None
    email_verified: bool | None = None
    voip_extension: VoipExtension | None = None
    password: Password | None = None
    require_password_change: bool | None = None

    @field_validator(
        "name",
        "username",
        "email",
        "email_verified",
        "password",
        "require_password_change",
        mode="before",
    )
    @classmethod
    def _required_stay_set(cls, value: Any) -> Any:
        return _not_null(value)


class SignIn(_Input):
    login: Annotated[str, BeforeValidator(_text), _length(1, 320)]
    password: Annotated[str, _length(1, 1024)]
    # A TOTP code or a recovery code, when the user has 2FA.
    code: Annotated[str, BeforeValidator(_text), _length(1, 64)] | None = None


class PasswordChange(_Input):
    current_password: Annotated[str, _length(1, 1024)]
    new_password: Password


class AdminPasswordReset(_Input):
    """ "random": a generated password, emailed; the user must change it at the next sign-in.
    "manual": the password given here, checked against the policy."""

    mode: Literal["random", "manual"]
    password: Password | None = None
    require_password_change: bool = True


class PasswordPolicyCheck(_Input):
    password: Annotated[str, _length(0, PASSWORD_HARD_MAX)]
    username: Annotated[str, _length(0, 320)] | None = None
    email: Annotated[str, _length(0, 320)] | None = None
    user_id: Annotated[str, _length(1, 64)] | None = None


class RoleCreate(_Input):
    """`name` (the slug) or `display_name`, or both: a missing one follows the other (a
    slug is derived from the display name, made unique)."""

    name: RoleName | None = None
    display_name: RoleDisplayName | None = None
    external_id: ExternalId | None = None
    description: Description = ""
    permissions: Annotated[list[str], Field(max_length=100)] = []

    @model_validator(mode="after")
    def _named(self) -> RoleCreate:
        if self.name is None and self.display_name is None:
            raise PydanticCustomError("required", "a role needs a name or a display_name")
        return self


class RoleUpdate(_Input):
    name: RoleName | None = None
    display_name: RoleDisplayName | None = None
    # null clears it
    external_id: ExternalId | None = None
    description: Description | None = None
    permissions: Annotated[list[str], Field(max_length=100)] | None = None

    @field_validator("name", "display_name", "description", "permissions", mode="before")
    @classmethod
    def _stay_set(cls, value: Any) -> Any:
        return _not_null(value)


class SettingsUpdate(_Input):
    name: Name | None = None
    seat_limit: Annotated[int, Field(ge=0, le=100_000_000)] | None = None
    session_idle_minutes: Annotated[int, Field(ge=5, le=60 * 24 * 30)] | None = None
    session_max_hours: Annotated[int, Field(ge=1, le=24 * 365)] | None = None
    password_min_length: Annotated[int, Field(ge=8, le=128)] | None = None
    password_max_length: Annotated[int, Field(ge=128, le=PASSWORD_HARD_MAX)] | None = None
    # null turns the rule off
    password_max_repeated: Annotated[int, Field(ge=1, le=64)] | None = None
    password_require_lowercase: bool | None = None
    password_require_uppercase: bool | None = None
    password_require_digit: bool | None = None
    password_require_symbol: bool | None = None
    password_reject_common: bool | None = None
    password_reject_personal: bool | None = None
    email_verification_required: bool | None = None
    two_factor_required_roles: Annotated[list[RoleName], Field(max_length=50)] | None = None
    lockout_threshold: Annotated[int, Field(ge=3, le=100)] | None = None
    lockout_minutes: Annotated[int, Field(ge=1, le=24 * 60)] | None = None
    ip_failure_limit: Annotated[int, Field(ge=10, le=100_000)] | None = None
    # Email delivery: null smtp_host means no SMTP server (the built-in mail catcher).
    smtp_host: SmtpHost | None = None
    smtp_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    smtp_security: Literal["none", "starttls", "tls"] | None = None
    smtp_username: Annotated[str, *_single_line(255)] | None = None
    # Write-only: stored sealed, never shown by any API (settings show smtp_password_set).
    smtp_password: Annotated[str, _length(1, 500)] | None = None
    mail_from_address: Email | None = None
    mail_from_name: Name | None = None
    mail_max_attempts: Annotated[int, Field(ge=1, le=50)] | None = None
    invitation_expiry_days: Annotated[int, Field(ge=1, le=90)] | None = None

    @field_validator(
        "name",
        "session_idle_minutes",
        "session_max_hours",
        "password_min_length",
        "password_max_length",
        "password_require_lowercase",
        "password_require_uppercase",
        "password_require_digit",
        "password_require_symbol",
        "password_reject_common",
        "password_reject_personal",
        "email_verification_required",
        "two_factor_required_roles",
        "lockout_threshold",
        "lockout_minutes",
        "ip_failure_limit",
        "smtp_security",
        "mail_max_attempts",
        "invitation_expiry_days",
        mode="before",
    )
    @classmethod
    def _name_not_null(cls, value: Any) -> Any:
        return _not_null(value)


E2E_KEY_MAX = 20_000


class E2EKeysInput(_Input):
    """Opaque to the server: whatever the client's end-to-end encryption produced."""

    model_config = ConfigDict(extra="forbid", str_max_length=E2E_KEY_MAX)

    public_key: Annotated[str, _length(1, E2E_KEY_MAX)]
    private_key: Annotated[str, _length(1, E2E_KEY_MAX)]


class TokenCreate(_Input):
    name: Annotated[str, BeforeValidator(_text), _length(1, 100)]
    # A subset of the owner's permissions; left out, all of them (or, when minted with a
    # restricted token, that token's).
    permissions: Annotated[list[str], Field(max_length=100)] | None = None
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class CurrentPassword(_Input):
    """The user's current password, asked again before a change to their second factor."""

    password: Annotated[str, _length(1, 1024)]


class TwoFactorCode(_Input):
    """A code from the authenticator app (or, where accepted, a recovery code)."""

    code: Annotated[str, BeforeValidator(_text), _length(1, 64)]


class PasswordAndCode(_Input):
    password: Annotated[str, _length(1, 1024)]
    code: Annotated[str, BeforeValidator(_text), _length(1, 64)]


LinkToken = Annotated[str, BeforeValidator(_text), _length(1, 200)]


class PasswordForgot(_Input):
    login: Annotated[str, BeforeValidator(_text), _length(1, 320)]


class PasswordResetByLink(_Input):
    token: LinkToken
    new_password: Password


class LinkCheck(_Input):
    token: LinkToken


class VerificationRequest(_Input):
    email: Email


class EmailChange(_Input):
    email: Email
    password: Annotated[str, _length(1, 1024)]


class TestEmail(_Input):
    # Left out: the address of whoever asks.
    to: Email | None = None


MAX_INVITATIONS = 500
_ADDRESS_SEPARATORS = re.compile(r"[,;\s]+")


def _address_list(value: Any) -> Any:
    """One string of addresses separated by commas, semicolons, white space or line breaks,
    or a list of such strings: the addresses, blanks dropped. Each is judged on its own by
    the action (normalised_email), so one bad address does not refuse the others."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return value  # the list[str] rule names what is wrong
    return [part for item in items for part in _ADDRESS_SEPARATORS.split(item) if part]


def normalised_email(value: str) -> str:
    """An address as the Email type keeps it; PydanticCustomError says why it is not one."""
    return _check_email(_text(value))


class InvitationCreate(_Input):
    emails: Annotated[
        list[str],
        BeforeValidator(_address_list),
        Field(min_length=1, max_length=MAX_INVITATIONS),
    ]
    # Left out: the default role of people.
    roles: RoleList | None = None


class InviteLinkCreate(_Input):
    expires_in_days: Annotated[int, Field(ge=1, le=90)] = 7
    # null: any number of people may join through the link until it expires.
    max_uses: Annotated[int, Field(ge=1, le=10_000)] | None = None
    roles: RoleList | None = None
    count: Annotated[int, Field(ge=1, le=50)] = 1


class JoinRequest(_Input):
    name: Name
    username: Username
    password: Password
    # Required through an invite link; an invitation brings its own address.
    email: Email | None = None


WEBHOOK_URL_MAX = 2048
WEBHOOK_SECRET_MIN = 16


def _check_webhook_url(value: str) -> str:
    """An http or https URL with a host and no credentials (a receiver authenticates the
    sender by the signature; a password in the URL would be shown in every listing)."""
    if len(value) > WEBHOOK_URL_MAX:
        raise PydanticCustomError(
            "url_length", "must be at most {max} characters long", {"max": WEBHOOK_URL_MAX}
        )
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (read so that a port out of range is refused here)
    except ValueError as exc:
        raise PydanticCustomError(
            "url_format", "is not a URL: {reason}", {"reason": str(exc)}
        ) from None
    if parts.scheme not in ("http", "https"):
        raise PydanticCustomError("url_scheme", "must be an http:// or https:// URL")
    if not parts.hostname:
        raise PydanticCustomError("url_host", "must name a host, such as https://example.com/")
    if parts.port == 0:
        raise PydanticCustomError("url_port", "must not name port 0")
    if parts.username is not None or parts.password is not None:
        raise PydanticCustomError(
            "url_credentials",
            "must not contain a user name or password; the signature authenticates the sender",
        )
    if parts.fragment or any(c.isspace() or not c.isprintable() for c in value):
        raise PydanticCustomError(
            "url_format", "must not contain white space, control characters or a #fragment"
        )
    try:
        ascii_host(parts.hostname)
    except ValueError as exc:
        raise PydanticCustomError(
            "url_host_idna",
            "must name a host that has an ASCII (IDNA) form: {reason}",
            {"reason": str(exc)},
        ) from None
    return value


def _check_webhook_secret(value: str) -> str:
    if (
        not WEBHOOK_SECRET_MIN <= len(value) <= 200
        or not value.isascii()
        or not value.isprintable()
    ):
        raise PydanticCustomError(
            "secret_format",
            "must be {min} to 200 printable ASCII characters",
            {"min": WEBHOOK_SECRET_MIN},
        )
    return value


WebhookUrl = Annotated[str, BeforeValidator(_text), AfterValidator(_check_webhook_url)]
WebhookSecret = Annotated[str, AfterValidator(_check_webhook_secret)]
WebhookEvents = Annotated[list[str], Field(min_length=1, max_length=50)]


# Booleans given as true or false only: "yes" or "0" taken as a yes or a no could open an
# endpoint to private networks by a typo.
class WebhookCreate(_Input):
    url: WebhookUrl
    # Webhook event types (GET /api/v1/webhooks/events lists them).
    events: WebhookEvents
    description: Description = ""
    active: StrictBool = True
    # Left out, the server makes one and answers it once.
    secret: WebhookSecret | None = None
    allow_private_network: StrictBool = False


class WebhookUpdate(_Input):
    url: WebhookUrl | None = None
    events: WebhookEvents | None = None
    description: Description | None = None
    active: StrictBool | None = None
    allow_private_network: StrictBool | None = None
    # A new secret of one's own, or `rotate_secret` for one the server makes and answers once.
    secret: WebhookSecret | None = None
    rotate_secret: StrictBool = False

    @field_validator(
        "url", "events", "description", "active", "allow_private_network", "secret", mode="before"
    )
    @classmethod
    def _stay_set(cls, value: Any) -> Any:
        return _not_null(value)
