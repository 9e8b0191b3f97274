"""The Users page's data: tabs with counts, search, role filter, sorting, keyset pagination.

A page costs a fixed number of queries whatever its size: the page of users, their roles
(one IN query), and the tab counts (six counter rows when unfiltered, one GROUP BY otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    any_,
    asc,
    bindparam,
    case,
    desc,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, selectinload

from userdesk.actions.context import Actor
from userdesk.actions.inputs import fold
from userdesk.db import dialect_of
from userdesk.errors import InvalidInput, NotFound
from userdesk.models import AvatarImage, Role, User, UserCount, UserStatus, user_roles
from userdesk.queries import cursors
from userdesk.queries.loading import user_joined
from userdesk.queries.search import contains, indexed, matches
from userdesk.queries.visibility import visible_users
from userdesk.security.permissions import OWNER, Permission

SORT_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "name": User.name_key,
    "username": User.username_key,
    "email": User.email_key,
    "status": User.status,
    "created_at": User.created_at,
    # Never signed in sorts as the oldest sign-in (see User.last_login_key).
    "last_login_at": User.last_login_key,
}
DEFAULT_SORT = "name"
MAX_LIMIT = 500
MAX_QUERY_LENGTH = 200
TABS = ("all", "pending", "active", "deactivated")
# What a listed user comes with: roles, creator and manager, one statement each per page.
_SHOWN = (selectinload(User.roles), selectinload(User.created_by), selectinload(User.manager))


# Tab counts under a search or role filter are exact when about this many users match or
# fewer; beyond it they are estimated from a sample and flagged as estimates (counting every
# match of a broad search reads tens of thousands of rows at a million users).
EXACT_COUNT_LIMIT = 2_000
# The sample: this many blocks of consecutive ids, spread evenly over the table; taken only
# in tables of more than SAMPLE_FROM users (below, counting every match is as cheap).
SAMPLE_BLOCKS, SAMPLE_BLOCK = 32, 128
SAMPLE_FROM = 50_000
# A role filter in name order matching more users than this walks the name index for its
# page, testing each entry; fewer matches are found through the role's index and sorted.
WALK_FROM = EXACT_COUNT_LIMIT
# The same for a search (the name index carries the search text, so testing an entry reads
# no row), with a higher bound: sorting costs what the matches number (about 1 µs each on
# PostgreSQL, so ~20 ms at this bound), while a walk costs what it reads before the page is
# full, which depends on where the matches sit in the order. 'zo' matches 9,000 of a million
# users, clustered in a few runs of names: the walk read 213,000 entries (70 ms) where
# sorting the 9,000 took 11 ms. Broader searches match densely enough that a walk is short.
SEARCH_WALK_FROM = 20_000


@dataclass(frozen=True)
class UserPage:
    items: list[User]
    next_cursor: str | None
    counts: dict[str, int]
    counts_estimated: bool = False


def parse_sort(sort: str | None) -> tuple[str, bool]:
    sort = sort or DEFAULT_SORT
    descending = sort.startswith("-")
    field = sort[1:] if descending else sort
    if field not in SORT_COLUMNS:
        allowed = ", ".join(SORT_COLUMNS)
        raise InvalidInput.one(
            "sort", "unknown_sort", f"must be one of {allowed}, optionally prefixed with '-'"
        )
    return field, descending


def _listing(field: str, descending: bool) -> str:
    return f"users:{'-' if descending else ''}{field}"


def _decode_cursor(cursor: str, field: str, descending: bool) -> tuple[Any, int]:
    raw, row_id = cursors.decode(cursor, _listing(field, descending), with_value=True)
    value: Any = raw
    try:
        if field in ("created_at", "last_login_at"):
            value = datetime.fromisoformat(value)
            # We only issue UTC times; a naive one would mean a different instant per database.
            if value.tzinfo is None:
                raise cursors.invalid()
            value = value.astimezone(UTC)
        elif field == "status":
            value = UserStatus(value)
    except (ValueError, OverflowError):
        raise cursors.invalid() from None
    return value, row_id


def _after(field: str, descending: bool, value: Any, row_id: int) -> ColumnElement[bool]:
    """Rows strictly after (value, row_id) in the listing's order."""
    pair, bound = tuple_(SORT_COLUMNS[field], User.id), tuple_(value, row_id)
    return pair < bound if descending else pair > bound


def _unindexed(column: Any, dialect: str) -> Any:
    """The same ordering through an expression no index matches.

    With a search, the planner would otherwise walk the sort index and test every row
    against the search until a page is full: quick when matches are spread out, seconds at a
    million users when they cluster at the end of the order (a 2-letter query matching the
    names that start with it). Sorting the matches instead costs what counting them costs,
    which the tab counts pay anyway.
    """
    name = column.expression.name
    if dialect != "postgresql":
        return literal_column(f"+users.{name}")  # SQLite's unary plus: a no-op no index matches
    if name in ("created_at", "last_login_key"):
        return column + text("interval '0'")
    if name == "id":
        return column + 0
    return column.op("||")(literal(""))


async def _role_id(session: AsyncSession, role: str) -> int:
    role_id = await session.scalar(select(Role.id).where(Role.name == role))
    if role_id is None:
        raise InvalidInput.one("role", "unknown_role", f"unknown role: {role}")
    return role_id


async def _few_holders(session: AsyncSession, role_id: int) -> list[int] | None:
    """The ids of the role's holders when there are at most EXACT_COUNT_LIMIT, else None.

    A role few people hold is best filtered by those ids, looked up by primary key. Left
    to itself, PostgreSQL joins the role's index to a read of every user instead (it
    judges ~1,500 lookups dearer than scanning 100,000 rows: 41 ms for a page at 100,000
    users, and it grows with the table), and the holders are read from the role's index
    alone, at most EXACT_COUNT_LIMIT + 1 of them, to find out.
    """
    ids = list(
        await session.scalars(
            select(user_roles.c.user_id)
            .where(user_roles.c.role_id == role_id)
            .limit(EXACT_COUNT_LIMIT + 1)
        )
    )
    return ids if len(ids) <= EXACT_COUNT_LIMIT else None


def _among(dialect: str, ids: list[int]) -> ColumnElement[bool]:
    """users.id is one of `ids` (up to a few thousand). On PostgreSQL as one array
    parameter: an IN list of 2,000 bound values cost ~10 ms of Python per statement to
    render and send, more than the lookups it asks for."""
    if dialect == "postgresql":
        return User.id == any_(bindparam("ids", ids, type_=ARRAY(BigInteger)))
    return User.id.in_(ids)


def _filters(
    session: AsyncSession, q: str | None, role_id: int | None, holders: list[int] | None
) -> list[Any]:
    conditions: list[Any] = []
    if q:
        conditions.append(matches(dialect_of(session), q))
    if holders is not None:
        conditions.append(_among(dialect_of(session), holders))
    elif role_id is not None:
        conditions.append(_has_role(role_id))
    return conditions


async def _status_totals(session: AsyncSession) -> dict[str, int]:
    """Users by status, from the counters the actions keep."""
    counts = {status.value: 0 for status in UserStatus}
    rows = await session.execute(
        select(UserCount.status, func.sum(UserCount.count)).group_by(UserCount.status)
    )
    for status, count in rows:
        counts[UserStatus(status).value] = int(count or 0)
    return counts


def _with_all(counts: dict[str, int]) -> dict[str, int]:
    return {"all": sum(counts[s.value] for s in UserStatus), **counts}


def _about(n: float) -> int:
    """Two significant figures: an estimate should not look exact."""
    n = round(n)
    return n if n < 100 else round(n, 2 - len(str(n)))


@dataclass(frozen=True)
class _Sample:
    by_status: dict[str, tuple[int, int]]  # status: (users in the sample, of them matching)
    blocks_hit: list[int]  # matches per block that has any

    @property
    def trustworthy(self) -> bool:
        """Enough rows, and matches spread over the blocks: a run of matches that happens to
        sit in one block (an import of one company's people) would be multiplied by the
        table's size."""
        hits = sum(self.blocks_hit)
        present = sum(n for n, _ in self.by_status.values())
        if present < SAMPLE_BLOCKS * SAMPLE_BLOCK // 4:
            return False
        return hits == 0 or (len(self.blocks_hit) >= 4 and max(self.blocks_hit) * 3 <= hits)


async def _sampled(session: AsyncSession, q: str, role_id: int | None) -> _Sample:
    """The sample: SAMPLE_BLOCKS runs of consecutive ids spread over the table (primary-key
    ranges, read without touching the rest), and how many of its users match the search
    `q` and hold the role."""
    # Two subqueries: SQLite finds a lone min() or max() in the index, but scans for both.
    low, high = (
        await session.execute(
            select(
                select(func.min(User.id)).scalar_subquery(),
                select(func.max(User.id)).scalar_subquery(),
            )
        )
    ).one()
    if low is None:
        return _Sample({}, [])
    step = (high - low + 1) / SAMPLE_BLOCKS
    starts = [low + int(i * step) for i in range(SAMPLE_BLOCKS)]
    dialect = dialect_of(session)
    tests: list[Any] = [contains(dialect, q)] if q else []
    # Which block a row is in (blocks are far shorter than the step between their starts).
    block = (User.id - low) // max(int(step), 1)
    if dialect == "postgresql":
        ranges = or_(*(User.id.between(a, a + SAMPLE_BLOCK - 1) for a in starts))
        if role_id is not None:
            # The sample's holders of the role, read once from the role's index over the
            # same ranges (a probe of user_roles per sampled user cost 7 ms at a million).
            holders = select(user_roles.c.user_id).where(
                user_roles.c.role_id == role_id,
                or_(*(user_roles.c.user_id.between(a, a + SAMPLE_BLOCK - 1) for a in starts)),
            )
            tests.append(User.id.in_(holders))
        passing = func.sum(case((and_(*tests), 1), else_=0))
        query = (
            select(User.status, block, func.count(), passing)
            .where(ranges)
            .group_by(User.status, block)
        )
        # A few thousand rows: starting parallel workers costs more than reading them (and
        # the rest of this read-only transaction has no use for them either).
        await session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    else:
        # SQLite reads an OR of ranges by scanning; a join on a list of starts is a range
        # search of the primary key per start.
        if role_id is not None:
            tests.append(_has_role(role_id))
        passing = func.sum(case((and_(*tests), 1), else_=0))
        blocks = union_all(*(select(literal(a).label("start")) for a in starts)).subquery("b")
        query = (
            select(User.status, block, func.count(), passing)
            .select_from(blocks)
            .join(User, User.id.between(blocks.c.start, blocks.c.start + SAMPLE_BLOCK - 1))
            .group_by(User.status, block)
        )
    by_status: dict[str, tuple[int, int]] = {}
    per_block: dict[int, int] = {}
    for status, index, n, hits in await session.execute(query):
        key = UserStatus(status).value
        seen, matched = by_status.get(key, (0, 0))
        by_status[key] = (seen + int(n), matched + int(hits or 0))
        per_block[int(index)] = per_block.get(int(index), 0) + int(hits or 0)
    return _Sample(by_status, [h for h in per_block.values() if h])


async def _counts(
    session: AsyncSession,
    *,
    totals: dict[str, int],
    q: str,
    role_id: int | None,
    conditions: list[Any],
    few: bool = False,
) -> tuple[dict[str, int], bool]:
    """The tab counts, and whether they are estimates. Unfiltered, the counters' `totals`.
    Under a search or role filter, in a table of more than SAMPLE_FROM users: the sample
    first, then exact counting when it says few users match (through the search or role
    index, cheap for few) or cannot be trusted, else the sample's estimate. `few`: the
    conditions are known to match few users (a role held by few), so they are counted."""
    if not conditions:
        return _with_all(totals), False
    if sum(totals.values()) > SAMPLE_FROM and not few:
        sample = await _sampled(session, q, role_id)
        estimate = {
            s.value: (hits / present * totals[s.value] if present else 0.0)
            for s in UserStatus
            for present, hits in [sample.by_status.get(s.value, (0, 0))]
        }
        if sample.trustworthy and sum(estimate.values()) > EXACT_COUNT_LIMIT:
            rounded = {status: _about(n) for status, n in estimate.items()}
            return {"all": _about(sum(estimate.values())), **rounded}, True
    counts = {status.value: 0 for status in UserStatus}
    rows = await session.execute(
        select(User.status, func.count()).where(*conditions).group_by(User.status)
    )
    for status, count in rows:
        counts[UserStatus(status).value] = int(count)
    return _with_all(counts), False


def _has_role(role_id: int, user_id: Any = None) -> ColumnElement[bool]:
    return exists().where(
        user_roles.c.user_id == (User.id if user_id is None else user_id),
        user_roles.c.role_id == role_id,
    )


async def _walk(
    session: AsyncSession,
    *,
    q: str | None,
    role_id: int | None,
    status: UserStatus | None,
    descending: bool,
    after: ColumnElement[bool] | None,
    limit: int,
) -> list[User]:
    """A filtered page in name order, by walking the name index (which carries the search
    text) and testing each entry (its text, its role), so no row is read that is not
    shown: quick when matches are common, and at most one pass over the index when they
    are not."""
    dialect = dialect_of(session)

    def direction(column: Any) -> Any:
        return desc(column) if descending else asc(column)

    if dialect == "postgresql":
        inner = select(User.id, User.name_key, User.search_text).order_by(
            direction(User.name_key), direction(User.id)
        )
        if status is not None:
            inner = inner.where(User.status == status)
        if after is not None:
            inner = inner.where(after)
        # OFFSET 0 keeps the walk a walk: the planner would otherwise merge it into the
        # outer query and, not counting on the covering index, sort every match instead.
        walk = inner.offset(0).subquery("walk")
        hits = select(walk.c.id)
        if q:
            hits = hits.where(contains(dialect, q, walk.c.search_text))
        if role_id is not None:
            hits = hits.where(_has_role(role_id, walk.c.id))
        hits = hits.order_by(direction(walk.c.name_key), direction(walk.c.id))
    else:
        # SQLite walks the covering index in order for this as it stands.
        hits = select(User.id)
        if q:
            hits = hits.where(contains(dialect, q))
        if status is not None:
            hits = hits.where(User.status == status)
        if after is not None:
            hits = hits.where(after)
        if role_id is not None:
            hits = hits.where(_has_role(role_id))
        hits = hits.order_by(direction(User.name_key), direction(User.id))
    hits = hits.limit(limit + 1)
    return list(
        await session.scalars(
            select(User)
            .where(User.id.in_(hits.scalar_subquery()))
            .options(*_SHOWN)
            .order_by(direction(User.name_key), direction(User.id))
        )
    )


async def list_users(
    session: AsyncSession,
    *,
    viewer: Actor,
    status: UserStatus | None = None,
    q: str | None = None,
    role: str | None = None,
    sort: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> UserPage:
    viewer.require(Permission.USERS_READ)
    field, descending = parse_sort(sort)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput.one("limit", "range", f"must be between 1 and {MAX_LIMIT}")
    q = (q or "").strip()
    if len(q) > MAX_QUERY_LENGTH:
        raise InvalidInput.one("q", "length", f"must be at most {MAX_QUERY_LENGTH} characters")
    role_id = await _role_id(session, role) if role else None
    holders = await _few_holders(session, role_id) if role_id is not None else None
    conditions = _filters(session, q, role_id, holders)
    after = (
        _after(field, descending, *_decode_cursor(cursor, field, descending)) if cursor else None
    )

    # The counts first: how many match decides how the page is best found.
    counts, estimated = await _counts(
        session,
        totals=await _status_totals(session),
        q=q,
        role_id=role_id,
        conditions=conditions,
        few=holders is not None,
    )
    matching = counts[status.value if status else "all"]
    many = matching > (SEARCH_WALK_FROM if q and role_id is None else WALK_FROM)
    # A search no index serves is walked whatever its count (sorting would read the whole
    # table), unless a role narrows the candidates first.
    unserved = bool(q) and not indexed(dialect_of(session), q) and role_id is None
    if conditions and field == "name" and (many or unserved):
        users = await _walk(
            session,
            q=q,
            role_id=role_id,
            status=status,
            descending=descending,
            after=after,
            limit=limit,
        )
    else:
        column = SORT_COLUMNS[field]
        direction = desc if descending else asc
        found = select(User.id).where(visible_users(viewer), *conditions)
        if status is not None:
            found = found.where(User.status == status)
        if after is not None:
            found = found.where(after)
        if q or (conditions and not many):
            # Matches found through the search or role index and sorted, rather than
            # tested one by one along the sort order until a page is full: the way for few
            # matches, and for a search in another order than by name. The ids are sorted,
            # then the page's rows read: sorting whole rows cost a third more ('zo' at a
            # million users: 19 ms against 11).
            unindexed = [_unindexed(c, dialect_of(session)) for c in (column, User.id)]
            found = found.order_by(*(direction(c) for c in unindexed)).limit(limit + 1)
            query = select(User).where(User.id.in_(found.scalar_subquery()))
        else:
            query = found.with_only_columns(User).limit(limit + 1)
        query = query.options(*_SHOWN).order_by(direction(column), direction(User.id))
        users = list(await session.scalars(query))
    next_cursor = None
    if len(users) > limit:
        users = users[:limit]
        next_cursor = _cursor_at(users[-1], field, descending)
    if estimated:  # an estimate never says fewer than the page shows
        tab = status.value if status else "all"
        counts[tab] = max(counts[tab], len(users))
        counts["all"] = max(counts["all"], counts[tab])
    return UserPage(items=users, next_cursor=next_cursor, counts=counts, counts_estimated=estimated)


def _cursor_at(user: User, field: str, descending: bool) -> str:
    """The cursor of the listing (field, direction) that starts just after `user`."""
    value = getattr(user, SORT_COLUMNS[field].key)
    return cursors.encode(_listing(field, descending), cursors.describe(value), user.id)


@dataclass(frozen=True)
class UserWindow:
    """A page that can be walked both ways: `before` is the cursor of the page ending just
    before this one (None on the first page), `after` that of the page after it."""

    items: list[User]
    counts: dict[str, int]
    before: str | None
    after: str | None
    counts_estimated: bool = False


async def browse_users(
    session: AsyncSession,
    *,
    viewer: Actor,
    status: UserStatus | None = None,
    q: str | None = None,
    role: str | None = None,
    sort: str | None = None,
    limit: int = 50,
    after: str | None = None,
    before: str | None = None,
    last: bool = False,
) -> UserWindow:
    """The console's paging: forward after a cursor, backward before one, or the last page,
    each a keyset read in one direction or the other (so the last page costs what the first
    does). A backward cursor is a cursor of the reversed listing."""
    field, descending = parse_sort(sort)
    filters = {"viewer": viewer, "status": status, "q": q, "role": role, "limit": limit}
    if before is None and not last:
        page = await list_users(session, sort=sort, cursor=after, **filters)  # type: ignore[arg-type]
        items = page.items
        back = _cursor_at(items[0], field, not descending) if after and items else None
        return UserWindow(
            items,
            page.counts,
            before=back,
            after=page.next_cursor,
            counts_estimated=page.counts_estimated,
        )
    reverse_sort = ("" if descending else "-") + field
    try:
        page = await list_users(session, sort=reverse_sort, cursor=before, **filters)  # type: ignore[arg-type]
    except InvalidInput as exc:  # the backward cursor is the caller's `before`
        errors = [replace(e, field="before") if e.field == "cursor" else e for e in exc.errors]
        raise InvalidInput(errors) from None
    items = page.items[::-1]
    forward = _cursor_at(items[-1], field, descending) if before and items else None
    return UserWindow(
        items,
        page.counts,
        before=page.next_cursor,
        after=forward,
        counts_estimated=page.counts_estimated,
    )


async def get_user(session: AsyncSession, *, viewer: Actor, user_id: str) -> User:
    # The user, their roles and their creator in one statement.
    user = (
        (
            await session.scalars(
                user_joined(select(User).where(User.public_id == user_id, visible_users(viewer)))
            )
        )
        .unique()
        .first()
    )
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


async def owner_exists(session: AsyncSession) -> bool:
    owner = await session.scalar(
        select(user_roles.c.user_id)
        .join(Role, Role.id == user_roles.c.role_id)
        .where(Role.name == OWNER)
        .limit(1)
    )
    return owner is not None


async def find_by_username(session: AsyncSession, *, viewer: Actor, username: str) -> User:
    user = await session.scalar(
        select(User)
        .where(User.username_key == fold(username), visible_users(viewer))
        .options(*_SHOWN)
    )
    if user is None:
        raise NotFound(f"no user named {username}")
    return user


async def get_avatar(
    session: AsyncSession, *, viewer: Actor, user_id: str
) -> tuple[User, AvatarImage | None]:
    """The user (for initials or a URL) and their uploaded picture, if they have one."""
    row = (
        await session.execute(
            select(User, AvatarImage)
            .outerjoin(AvatarImage, AvatarImage.user_id == User.id)
            .where(User.public_id == user_id, visible_users(viewer))
        )
    ).first()
    if row is None:
        raise NotFound(f"no user with id {user_id}")
    return row[0], row[1]
