"""The reads behind the Rocket.Chat-compatible users API: its Mongo-style `query`, `sort` and
`fields` over users, translated to SQL (never evaluated in Python); lookups by id, username
or address; and presence, read from sessions.

`query` takes what scripts send to Rocket.Chat's users.list: field conditions (a value, or
$eq, $ne, $in, $nin, $exists, $gt, $gte, $lt, $lte, and $regex with $options), combined
with $and, $or and $nor. A $regex must be literal text, optionally anchored by ^ and $
(`^ali`, `smith$`, `example\\.com`): it becomes a starts-with, ends-with, contains or equals
comparison, case-insensitive with the `i` option. Any other pattern is refused, not scanned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scim2_models.path.expressions import CompareOperator
from sqlalchemy import and_, exists, false, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from userdesk.actions.context import Actor
from userdesk.actions.inputs import email_key, fold
from userdesk.errors import InvalidInput, NotFound
from userdesk.models import LoginSession, Role, User, UserStatus, UserType, user_roles
from userdesk.queries.loading import user_joined
from userdesk.queries.scim import text_test
from userdesk.queries.visibility import visible_users
from userdesk.services import services_of

# Seen within this long through a session: "online"; otherwise "offline".
ONLINE_WINDOW = timedelta(minutes=5)
MAX_CONDITIONS = 200
MAX_DEPTH = 8


def _invalid_query(message: str) -> InvalidInput:
    return InvalidInput.one("query", "invalid_query", message)


@dataclass(frozen=True)
class _Field:
    column: Any
    kind: str = "text"  # text, boolean, datetime, roles, type
    # The key column and its folding, for equality through the unique index.
    key: Any = None
    folded: Callable[[str], str] | None = None
    case_exact: bool = False


_FIELDS: dict[str, _Field] = {
    "_id": _Field(User.public_id, case_exact=True),
    "username": _Field(User.username, key=User.username_key, folded=fold),
    "name": _Field(User.name),
    "emails.address": _Field(User.email, key=User.email_key, folded=email_key),
    "nickname": _Field(User.nickname),
    "bio": _Field(User.bio),
    "statusText": _Field(User.status_message),
    "active": _Field(User.status != UserStatus.DEACTIVATED, "boolean"),
    "requirePasswordChange": _Field(User.require_password_change, "boolean"),
    "roles": _Field(Role.name, "roles", case_exact=True),
    "type": _Field(User.type, "type"),
    "createdAt": _Field(User.created_at, "datetime"),
    "lastLogin": _Field(User.last_login_at, "datetime"),
    "_updatedAt": _Field(User.updated_at, "datetime"),
}
# Rocket.Chat stores one address per entry of `emails`; userdesk users have one.
_FIELDS["emails"] = _FIELDS["emails.address"]

_ORDERINGS = ("$gt", "$gte", "$lt", "$lte")
_SPECIAL = frozenset(".^$*+?()[]{}|\\")


def _literal(pattern: str) -> tuple[str, CompareOperator] | None:
    """A $regex that is literal text with optional anchors, as (text, comparison)."""
    at_start = pattern.startswith("^")
    body = pattern[1:] if at_start else pattern
    at_end = False
    if body.endswith("$"):
        backslashes = len(body[:-1]) - len(body[:-1].rstrip("\\"))
        if backslashes % 2 == 0:
            at_end, body = True, body[:-1]
    text: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            if i + 1 == len(body) or body[i + 1].isalnum():
                return None  # \d, \w, \b...: a class, not a character
            text.append(body[i + 1])
            i += 2
            continue
        if char in _SPECIAL:
            return None
        text.append(char)
        i += 1
    op = {
        (True, True): CompareOperator.eq,
        (True, False): CompareOperator.sw,
        (False, True): CompareOperator.ew,
        (False, False): CompareOperator.co,
    }[(at_start, at_end)]
    return "".join(text), op


def _datetime(value: Any, name: str) -> datetime:
    if isinstance(value, dict) and set(value) == {"$date"}:
        value = value["$date"]
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if when.tzinfo is not None:
                return when.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    raise _invalid_query(f"{name} is a date: compare it with an ISO 8601 date-time with a zone")


def _text(field: _Field, name: str, op: CompareOperator, value: Any, exact: bool) -> Any:
    if not isinstance(value, str):
        raise _invalid_query(f"{name} is text: compare it with a string")
    if op is CompareOperator.eq and field.key is not None and not exact:
        assert field.folded is not None
        return field.key == field.folded(value)
    return and_(
        field.column.is_not(None),
        text_test(op, field.column, value, exact=exact or field.case_exact),
    )


def _equals(field: _Field, name: str, value: Any) -> Any:
    """`name` equals `value` (case-exact, as in Rocket.Chat, except through the folded keys
    of usernames and addresses, which are unique regardless of case)."""
    if field.kind == "boolean":
        if not isinstance(value, bool):
            raise _invalid_query(f"{name} is true or false")
        return field.column.is_(True) if value else not_(field.column.is_(True))
    if field.kind == "datetime":
        return and_(field.column.is_not(None), field.column == _datetime(value, name))
    if field.kind == "type":
        kinds = {"user": UserType.HUMAN, "bot": UserType.BOT}
        if not isinstance(value, str):
            raise _invalid_query("type is 'user' or 'bot'")
        return field.column == kinds[value] if value in kinds else false()
    if field.kind == "roles":
        if not isinstance(value, str):
            raise _invalid_query("roles holds role names: compare it with a string")
        return _holds(Role.name == value)
    if field.key is not None and isinstance(value, str):
        assert field.folded is not None
        return field.key == field.folded(value)
    return _text(field, name, CompareOperator.eq, value, exact=True)


def _holds(condition: Any) -> Any:
    return exists().where(
        user_roles.c.user_id == User.id, user_roles.c.role_id == Role.id, condition
    )


def _values(value: Any, name: str, operator: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _invalid_query(f"{operator} on {name} takes a non-empty list")
    return value


def _condition(name: str, spec: Any, budget: list[int]) -> Any:
    field = _FIELDS.get(name)
    if field is None:
        raise _invalid_query(
            f"cannot filter by {name!r}: supported are {', '.join(sorted(_FIELDS))}"
        )
    if not isinstance(spec, dict) or not any(k.startswith("$") for k in spec):
        _spend(budget)
        return _equals(field, name, spec)
    unknown = sorted(
        set(spec) - {"$eq", "$ne", "$in", "$nin", "$exists", "$regex", "$options", *_ORDERINGS}
    )
    if unknown:
        raise _invalid_query(f"unsupported operator {unknown[0]} on {name}")
    terms = []
    for operator, value in spec.items():
        if operator == "$options":
            continue
        _spend(budget)
        if operator == "$eq":
            terms.append(_equals(field, name, value))
        elif operator == "$ne":
            terms.append(not_(_equals(field, name, value)))
        elif operator in ("$in", "$nin"):
            values = _values(value, name, operator)
            for _ in values[1:]:
                _spend(budget)
            either = or_(*(_equals(field, name, v) for v in values))
            terms.append(either if operator == "$in" else not_(either))
        elif operator == "$exists":
            if not isinstance(value, bool):
                raise _invalid_query("$exists takes true or false")
            present = (
                _holds(Role.id.is_not(None)) if field.kind == "roles" else field.column.is_not(None)
            )
            terms.append(present if value else not_(present))
        elif operator == "$regex":
            terms.append(_regex(field, name, value, spec.get("$options", "")))
        else:
            # Only dates are ordered: text would follow each database's collation.
            if field.kind != "datetime":
                raise _invalid_query(f"{operator} applies to dates only, not to {name}")
            when = _datetime(value, name)
            column = field.column
            terms.append(
                and_(
                    column.is_not(None),
                    {
                        "$gt": column > when,
                        "$gte": column >= when,
                        "$lt": column < when,
                        "$lte": column <= when,
                    }[operator],
                )
            )
    if not terms:
        raise _invalid_query(f"no condition on {name}")
    return and_(*terms)


def _regex(field: _Field, name: str, pattern: Any, options: Any) -> Any:
    if not isinstance(pattern, str) or not isinstance(options, str):
        raise _invalid_query(f"$regex on {name} takes a string pattern and string $options")
    if set(options) - {"i"}:
        raise _invalid_query(f"$options on {name}: only 'i' is supported")
    literal = _literal(pattern)
    if literal is None:
        raise _invalid_query(
            f"$regex on {name}: only literal text, optionally anchored by ^ and $, is "
            "supported (escape . and other special characters with a backslash)"
        )
    text, op = literal
    exact = "i" not in options
    if not text and op is not CompareOperator.eq:
        # An empty pattern matches any value at all.
        present = Role.id.is_not(None) if field.kind == "roles" else field.column.is_not(None)
        return _holds(present) if field.kind == "roles" else present
    if field.kind == "roles":
        return _holds(text_test(op, Role.name, text, exact=exact))
    if field.kind != "text":
        raise _invalid_query(f"$regex does not apply to {name}")
    return _text(field, name, op, text, exact=exact)


def _spend(budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise _invalid_query(f"has more than {MAX_CONDITIONS} conditions")


def _where(query: Any, budget: list[int], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _invalid_query(f"nests deeper than {MAX_DEPTH} levels")
    if not isinstance(query, dict):
        raise _invalid_query("must be a JSON object")
    terms = []
    for key, value in query.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list) or not value:
                raise _invalid_query(f"{key} takes a non-empty list of conditions")
            for _ in value:
                _spend(budget)
            parts = [_where(part, budget, depth + 1) for part in value]
            terms.append(
                and_(*parts)
                if key == "$and"
                else or_(*parts)
                if key == "$or"
                else not_(or_(*parts))
            )
        elif key.startswith("$"):
            raise _invalid_query(f"unsupported operator {key}")
        else:
            terms.append(_condition(key, value, budget))
    # An empty object matches every user, as in MongoDB.
    return and_(*terms) if terms else true()


def user_condition(query: Any) -> Any:
    """The SQL condition of a users.list `query` ({} matches every user)."""
    return _where(query, [MAX_CONDITIONS], 0)


_SORTS = {
    "username": User.username_key,
    "name": User.name_key,
    "emails.address": User.email_key,
    "createdAt": User.created_at,
    "lastLogin": User.last_login_at,
    "_updatedAt": User.updated_at,
}


def sort_order(sort: Any) -> tuple[Any, bool]:
    """(column, descending) of a users.list `sort` such as {"username": 1}."""
    if not isinstance(sort, dict) or len(sort) != 1:
        raise InvalidInput.one(
            "sort", "invalid_sort", 'must be one field and its direction, such as {"username": 1}'
        )
    ((name, direction),) = sort.items()
    if name not in _SORTS:
        raise InvalidInput.one(
            "sort", "invalid_sort", f"cannot sort by {name!r}: supported are {', '.join(_SORTS)}"
        )
    if direction not in (1, -1) or isinstance(direction, bool):
        raise InvalidInput.one("sort", "invalid_sort", "a direction is 1 or -1")
    return _SORTS[name], direction == -1


def holders_of(role: str) -> Any:
    """The condition: the user holds the role named `role`."""
    return _holds(Role.name == role)


async def find_user(
    session: AsyncSession,
    *,
    viewer: Actor,
    user_id: str | None = None,
    username: str | None = None,
    email: str | None = None,
) -> User:
    """The user by id, else by username, else by address, as the viewer may see them."""
    if user_id:
        condition, named = User.public_id == user_id, f"id {user_id}"
    elif username:
        condition, named = User.username_key == fold(username), f"username {username}"
    elif email:
        condition, named = User.email_key == email_key(email), f"address {email}"
    else:
        raise InvalidInput.one("userId", "required", "give userId, username or email")
    found = (
        (await session.scalars(user_joined(select(User).where(condition, visible_users(viewer)))))
        .unique()
        .first()
    )
    if found is None:
        raise NotFound(f"no user with {named}")
    return found


async def online(session: AsyncSession, user_ids: list[int]) -> set[int]:
    """Which of these users used a session within ONLINE_WINDOW."""
    if not user_ids:
        return set()
    now = services_of(session).clock.now()
    rows = await session.scalars(
        select(LoginSession.user_id)
        .where(
            LoginSession.user_id.in_(user_ids),
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
            LoginSession.last_seen_at >= now - ONLINE_WINDOW,
        )
        .distinct()
    )
    return set(rows)
