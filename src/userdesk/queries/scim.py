"""SCIM filters and sorting over users and groups (roles), translated to SQL (never
evaluated in Python).

A filter arrives parsed (scim2-models' syntax tree); each attribute path is looked up in
USER_ATTRIBUTES (or GROUP_ATTRIBUTES), which says which column holds it and how it compares:

- `folded` attributes (userName, emails.value) compare through their key columns, which
  hold the case-folded form, so `userName eq "Alice"` is an index lookup;
- other strings compare case-insensitively unless SCIM calls them case-exact (id,
  externalId), by lowering both sides in SQL. On SQLite, lower() folds ASCII letters
  only, so there "É" matches "É" but not "é";
- every comparison is two-valued: an attribute the user lacks matches `ne` and nothing
  else, so `not (...)` means what it says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scim2_models.path.expressions import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import and_, exists, func, literal, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from userdesk.actions.context import Actor
from userdesk.actions.inputs import email_key, fold, role_key
from userdesk.errors import InvalidInput, NotFound
from userdesk.models import Role, User, UserStatus, user_roles
from userdesk.queries.loading import user_joined
from userdesk.queries.visibility import visible_users
from userdesk.security.permissions import Permission

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

MAX_COUNT = 1_000
DEFAULT_COUNT = 100

_manager = aliased(User, name="scim_manager")


@dataclass(frozen=True)
class Attribute:
    """Where a SCIM attribute lives and how it compares."""

    column: Any
    kind: str = "string"  # string, boolean, datetime
    case_exact: bool = False
    # The column holds the case-folded form (a key column): compare with fold(value).
    folded: Callable[[str], str] | None = None
    sortable: bool = True
    # Whether the user has the attribute at all, where a NULL does not say it.
    guard: Any = None
    # The column a sort uses, where another one orders the same way through an index.
    sort: Any = None


# (schema URN, attribute, sub-attribute) -> Attribute, names lower-cased.
USER_ATTRIBUTES: dict[tuple[str, str, str | None], Attribute] = {
    (CORE_USER, "id", None): Attribute(User.public_id, case_exact=True),
    (CORE_USER, "externalid", None): Attribute(User.external_id, case_exact=True),
    (CORE_USER, "username", None): Attribute(User.username_key, folded=fold),
    (CORE_USER, "displayname", None): Attribute(
        User.name, guard=User.name_derived.is_(False), sort=User.name_key
    ),
    (CORE_USER, "nickname", None): Attribute(User.nickname),
    (CORE_USER, "title", None): Attribute(User.title),
    (CORE_USER, "usertype", None): Attribute(User.employment_type),
    (CORE_USER, "locale", None): Attribute(User.locale),
    (CORE_USER, "timezone", None): Attribute(User.timezone),
    (CORE_USER, "active", None): Attribute(User.status != UserStatus.DEACTIVATED, "boolean"),
    (CORE_USER, "name", "formatted"): Attribute(User.formatted_name),
    (CORE_USER, "name", "givenname"): Attribute(User.given_name),
    (CORE_USER, "name", "familyname"): Attribute(User.family_name),
    (CORE_USER, "emails", "value"): Attribute(User.email_key, folded=email_key),
    (CORE_USER, "emails", "type"): Attribute(User.email_type),
    (CORE_USER, "emails", "primary"): Attribute(User.email_primary, "boolean"),
    (CORE_USER, "photos", "value"): Attribute(User.avatar_url, case_exact=True),
    (CORE_USER, "meta", "created"): Attribute(User.created_at, "datetime"),
    (CORE_USER, "meta", "lastmodified"): Attribute(User.updated_at, "datetime"),
    (CORE_USER, "groups", "value"): Attribute(Role.public_id, case_exact=True, sortable=False),
    (CORE_USER, "groups", "display"): Attribute(
        Role.display_name_key, folded=role_key, sortable=False
    ),
    (ENTERPRISE_USER, "employeenumber", None): Attribute(User.employee_number),
    (ENTERPRISE_USER, "department", None): Attribute(User.department),
    (ENTERPRISE_USER, "organization", None): Attribute(User.organization),
    (ENTERPRISE_USER, "manager", "value"): Attribute(
        select(_manager.public_id).where(_manager.id == User.manager_id).scalar_subquery(),
        case_exact=True,
        sortable=False,
    ),
}
GROUP_ATTRIBUTES: dict[tuple[str, str, str | None], Attribute] = {
    (CORE_GROUP, "id", None): Attribute(Role.public_id, case_exact=True),
    (CORE_GROUP, "externalid", None): Attribute(Role.external_id, case_exact=True),
    (CORE_GROUP, "displayname", None): Attribute(Role.display_name_key, folded=role_key),
    (CORE_GROUP, "meta", "created"): Attribute(Role.created_at, "datetime"),
    (CORE_GROUP, "meta", "lastmodified"): Attribute(Role.updated_at, "datetime"),
    (CORE_GROUP, "members", "value"): Attribute(User.public_id, case_exact=True, sortable=False),
}


@dataclass(frozen=True)
class _Kind:
    """A resource type's filterable attributes."""

    attributes: dict[tuple[str, str, str | None], Attribute]
    schemas: tuple[str, ...]  # the first one is the core schema
    # A multi-valued or complex attribute named alone means its value (RFC 7644 §3.4.2.2).
    implied_sub: dict[str, str]


_USERS = _Kind(
    USER_ATTRIBUTES,
    (CORE_USER, ENTERPRISE_USER),
    {"emails": "value", "photos": "value", "groups": "value", "manager": "value"},
)
_GROUPS = _Kind(GROUP_ATTRIBUTES, (CORE_GROUP,), {"members": "value"})


def _lookup(
    kind: _Kind, path: AttrPath, parent: str | None = None, field: str = "filter"
) -> tuple[str, str, str | None]:
    uri = (path.uri or "").lower()
    attr, sub = path.attr.lower(), path.sub_attr.lower() if path.sub_attr else None
    if parent is not None:  # inside emails[...]: `type` means emails.type
        attr, sub = parent, attr
    schema = next((s for s in kind.schemas if s.lower() == uri), None)
    if schema is None:
        if uri:
            raise _unknown(path, field)
        schema = kind.schemas[0]
    if sub is None and attr in kind.implied_sub:
        sub = kind.implied_sub[attr]
    if (schema, attr, sub) not in kind.attributes:
        raise _unknown(path, field)
    return schema, attr, sub


def _unknown(path: AttrPath, field: str = "filter") -> InvalidInput:
    code = "invalidFilter" if field == "filter" else "invalidValue"
    return InvalidInput.one(field, code, f"unknown or unsupported attribute {path}")


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _datetime(value: Any, path: AttrPath) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if when.tzinfo is None:
            raise ValueError("no time zone")
        return when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput.one(
            "filter", "invalidValue", f"{path} is a date-time with its time zone: {value!r} is not"
        ) from None


def text_test(op: CompareOperator, subject: Any, text: str, exact: bool) -> Any:
    """A string comparison behaving alike on both databases. Case-insensitive ones lower
    both sides in SQL, so a value in its stored case always matches, accents included
    (SQLite's lower() folds ASCII letters only); case-exact ones avoid LIKE, which SQLite
    applies regardless of ASCII case."""
    value: Any = literal(text)
    if exact:
        if op is CompareOperator.co:
            return func.replace(subject, value, "") != subject
        if op is CompareOperator.sw:
            return func.substr(subject, 1, len(text)) == value
        if op is CompareOperator.ew:
            start = func.length(subject) - len(text) + 1
            return and_(start >= 1, func.substr(subject, start) == value)
    else:
        subject, value = func.lower(subject), func.lower(value)
        if op in (CompareOperator.co, CompareOperator.sw, CompareOperator.ew):
            needle = _escape_like(text)
            pattern = {
                CompareOperator.co: f"%{needle}%",
                CompareOperator.sw: f"{needle}%",
                CompareOperator.ew: f"%{needle}",
            }[op]
            return subject.like(func.lower(literal(pattern)), escape="\\")
    return {
        CompareOperator.eq: subject == value,
        CompareOperator.gt: subject > value,
        CompareOperator.ge: subject >= value,
        CompareOperator.lt: subject < value,
        CompareOperator.le: subject <= value,
    }[op]


def _compare(found: Attribute, op: CompareOperator, value: Any, path: AttrPath) -> Any:
    """One comparison, never NULL: an absent attribute compares false (`ne`: true)."""
    column = found.column
    present = column.is_not(None)
    if found.guard is not None:
        present = and_(present, found.guard)
    if op is CompareOperator.ne:
        return not_(_compare(found, CompareOperator.eq, value, path))
    if found.kind == "boolean":
        if op is not CompareOperator.eq or not isinstance(value, bool):
            raise InvalidInput.one(
                "filter", "invalidFilter", f"{path} is a boolean: compare it with eq or ne"
            )
        return and_(present, column.is_(True) if value else column.is_(False))
    if found.kind == "datetime":
        when = _datetime(value, path)
        operators = {
            CompareOperator.eq: column == when,
            CompareOperator.gt: column > when,
            CompareOperator.ge: column >= when,
            CompareOperator.lt: column < when,
            CompareOperator.le: column <= when,
        }
        if op not in operators:
            raise InvalidInput.one(
                "filter", "invalidFilter", f"{path} is a date-time: {op.value} does not apply"
            )
        return operators[op]
    if isinstance(value, bool) or value is None:
        raise InvalidInput.one(
            "filter", "invalidValue", f"{path} is a string: compare it with a quoted value"
        )
    text = str(value)
    if found.folded is not None:
        return and_(present, text_test(op, column, found.folded(text), exact=True))
    return and_(present, text_test(op, column, text, exact=found.case_exact))


def _where(kind: _Kind, node: FilterNode, parent: str | None = None) -> Any:
    if isinstance(node, LogicalExpr):
        terms = [_where(kind, term, parent) for term in node.terms]
        return and_(*terms) if node.op is LogicalOperator.and_ else or_(*terms)
    if isinstance(node, Not):
        return not_(_where(kind, node.expr, parent))
    if isinstance(node, ValuePath):
        outer = node.attr_path.attr.lower()
        if node.attr_path.sub_attr is not None or outer not in kind.implied_sub:
            raise _unknown(node.attr_path)
        return _within(outer, _where(kind, node.val_filter, parent=outer))
    if isinstance(node, Present | Comparison):
        schema, attr, sub = _lookup(kind, node.attr_path, parent)
        found = kind.attributes[(schema, attr, sub)]
        if isinstance(node, Present):
            test = found.column.is_not(None)
            if found.guard is not None:
                test = and_(test, found.guard)
            if found.column is User.avatar_url:
                test = and_(test, found.column != "")
        else:
            test = _compare(found, node.op, node.value, node.attr_path)
        return test if parent is not None else _within(attr, test)
    raise InvalidInput.one("filter", "invalidFilter", f"unsupported filter expression {node}")


def _within(attr: str, test: Any) -> Any:
    """A test on a sub-attribute of `attr`: a user's groups are the roles they hold, a
    group's members the users holding it (each an EXISTS over the role's index); the
    others are the resource's own columns (the manager's id by a scalar subquery)."""
    if attr in ("groups", "members"):
        return exists().where(
            user_roles.c.user_id == User.id, user_roles.c.role_id == Role.id, test
        )
    return test


# A filter is one request's worth of conditions, not a list of every user to look for: each
# comparison is a bound parameter, and databases take some 32,000 at most.
MAX_COMPARISONS = 200


def _comparisons(node: FilterNode) -> int:
    if isinstance(node, LogicalExpr):
        return sum(_comparisons(term) for term in node.terms)
    if isinstance(node, Not):
        return _comparisons(node.expr)
    if isinstance(node, ValuePath):
        return _comparisons(node.val_filter)
    return 1


def _filter(kind: _Kind, ast: FilterNode) -> Any:
    if _comparisons(ast) > MAX_COMPARISONS:
        raise InvalidInput.one(
            "filter", "invalidFilter", f"has more than {MAX_COMPARISONS} comparisons"
        )
    return _where(kind, ast)


def user_filter(ast: FilterNode) -> Any:
    """The SQL condition of a parsed SCIM filter over users."""
    return _filter(_USERS, ast)


def group_filter(ast: FilterNode) -> Any:
    """The SQL condition of a parsed SCIM filter over groups (roles)."""
    return _filter(_GROUPS, ast)


def sort_column(path: AttrPath) -> Any:
    """The column a sort of users by `path` orders."""
    return _sort_column(_USERS, path)


def group_sort_column(path: AttrPath) -> Any:
    return _sort_column(_GROUPS, path)


def _sort_column(kind: _Kind, path: AttrPath) -> Any:
    found = kind.attributes[_lookup(kind, path, field="sortBy")]
    if not found.sortable or found.kind == "boolean":
        raise InvalidInput.one("sortBy", "invalidValue", f"cannot sort by {path}")
    if found.sort is not None:
        return found.sort
    if found.kind == "datetime" or found.folded or found.case_exact:
        return found.column
    return func.lower(found.column)


async def _total(session: AsyncSession, model: Any, conditions: list[Any]) -> int:
    return (await session.scalar(select(func.count()).select_from(model).where(*conditions))) or 0


def _page_order(order: Any, descending: bool, row_id: Any) -> list[Any]:
    """`order`, then the row id, both one way; rows without the attribute come last either
    way, on both databases."""
    ordering = [
        (c.desc() if descending else c.asc()).nulls_last() for c in (order,) if order is not None
    ]
    return [*ordering, row_id.desc() if descending else row_id.asc()]


@dataclass(frozen=True)
class UserSlice:
    total: int
    users: list[User]


async def search_users(
    session: AsyncSession,
    *,
    viewer: Actor,
    condition: Any = None,
    order: Any = None,
    descending: bool = False,
    start: int = 0,
    count: int = DEFAULT_COUNT,
) -> UserSlice:
    """Users matching `condition`, `count` of them from the 0-based `start`, in `order`
    (then by id), and how many match in all."""
    viewer.require(Permission.USERS_READ)
    conditions = [visible_users(viewer)]
    if condition is not None:
        conditions.append(condition)
    total = await _total(session, User, conditions)
    if count == 0 or start >= total:
        return UserSlice(total, [])
    ids = (
        select(User.id)
        .where(*conditions)
        .order_by(*_page_order(order, descending, User.id))
        .offset(start)
        .limit(count)
    )
    position = {user_id: n for n, user_id in enumerate(await session.scalars(ids))}
    found = (
        (await session.scalars(user_joined(select(User).where(User.id.in_(list(position))))))
        .unique()
        .all()
    )
    return UserSlice(total, sorted(found, key=lambda user: position[user.id]))


@dataclass(frozen=True)
class GroupSlice:
    total: int
    groups: list[Role]


async def search_groups(
    session: AsyncSession,
    *,
    viewer: Actor,
    condition: Any = None,
    order: Any = None,
    descending: bool = False,
    start: int = 0,
    count: int = DEFAULT_COUNT,
) -> GroupSlice:
    """Roles as SCIM groups, as search_users does users (without their members)."""
    viewer.require(Permission.USERS_READ)
    conditions = [condition] if condition is not None else []
    total = await _total(session, Role, conditions)
    if count == 0 or start >= total:
        return GroupSlice(total, [])
    found = await session.scalars(
        select(Role)
        .where(*conditions)
        .order_by(*_page_order(order, descending, Role.id))
        .offset(start)
        .limit(count)
    )
    return GroupSlice(total, list(found))


async def get_group(session: AsyncSession, *, viewer: Actor, group_id: str) -> Role:
    viewer.require(Permission.USERS_READ)
    role = await session.scalar(select(Role).where(Role.public_id == group_id))
    if role is None:
        raise NotFound(f"no group with id {group_id}")
    return role


async def group_members(session: AsyncSession, role_ids: list[int]) -> dict[int, list[str]]:
    """The public ids of the users holding each role, in the order they were created (one
    read of the role's index and the users' primary keys; no user is loaded)."""
    members: dict[int, list[str]] = {role_id: [] for role_id in role_ids}
    if not role_ids:
        return members
    rows = await session.execute(
        select(user_roles.c.role_id, User.public_id)
        .join(User, User.id == user_roles.c.user_id)
        .where(user_roles.c.role_id.in_(role_ids))
        .order_by(user_roles.c.role_id, User.id)
    )
    for role_id, public_id in rows:
        members[role_id].append(public_id)
    return members


async def users_among(
    session: AsyncSession, public_ids: list[str], *, holding: int | None = None
) -> set[str]:
    """Which of `public_ids` are users (holding the role `holding`, if given): a lookup by
    id for each, so a change of a few members of a large group reads only those."""
    if not public_ids:
        return set()
    query = select(User.public_id).where(User.public_id.in_(public_ids))
    if holding is not None:
        query = query.join(user_roles, user_roles.c.user_id == User.id).where(
            user_roles.c.role_id == holding
        )
    return set(await session.scalars(query))
