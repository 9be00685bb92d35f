"""Full-text search of posts whose cost does not grow with the number of matches.

Two orderings (`?ordering=`):
- `newest`: every match, newest first, paged by (created_at, id) like the feed.
- `relevance` (the default): a window of recent matches, best first by ts_rank on the stored
  document: the newest SEARCH_RELEVANCE_WINDOW matches, and for a search common enough to fill
  a page among the newest SEARCH_SCAN_POSTS posts, only matches among those. Ranking every match
  is what made a common word cost a second on 10M posts (docs/performance.md): ts_rank reads each
  match, and no index hands matches over in rank order. Older matches are reached with `newest`.
  A relevance cursor carries its window (oldest and newest match, and the plan that found it),
  so later pages rank exactly the first page's window: posts published meanwhile neither join it
  nor push a match out.

Each search runs with one of two plans, each fast where the other is slow (10M posts, 2 cores,
measured in docs/performance.md):
- SCAN: read posts_created_idx (posts_author_created_idx for one author) from the newest post
  (or the cursor) and check each post's document, about 0.2 us per post, never more than
  SEARCH_SCAN_POSTS posts: the bound is in the SQL (a LIMIT under the filter), so no estimate
  can make it read the table.
- INDEX: the GIN index's bitmap of every match, each match read and sorted: cost grows with the
  words' posting lists and the matches, so it is for rare searches.
The first plan is SCAN when PostgreSQL's statistics (search_document's most_common_elems, read
by each process every SEARCH_STATISTICS_TTL seconds, combined over the query: AND and phrases
multiply, OR adds, NOT complements) expect a page of matches within the scan, INDEX otherwise;
a word the statistics do not know is taken as rare (it was below their cut-off at ANALYZE). A
scan that ends short of a page gives way to INDEX; an INDEX plan still running after
SEARCH_PLAN_TIMEOUT_MS (a search that became common since ANALYZE) gives way to the scan.
"""

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import OperationalError, connections, router, transaction
from django.db.models import CharField, FloatField
from psycopg.errors import QueryCanceled
from rest_framework.exceptions import ValidationError

from posts.models import SEARCH_CONFIG, Post
from project.http.pagination import INVALID_CURSOR, PageQuery, SortKey, seek_condition

RELEVANCE, NEWEST = "relevance", "newest"
ORDERINGS = (RELEVANCE, NEWEST)
SCAN, INDEX = "scan", "index"

# Each plan forbids the other's scans for one statement (SET LOCAL), and neither may read the
# whole table. The INDEX plan's bitmap gets work_mem enough to stay exact: a lossy bitmap
# rechecks every post of its pages.
_PLAN_SETTINGS = {
    SCAN: {"enable_bitmapscan": "off", "enable_seqscan": "off"},
    INDEX: {"enable_indexscan": "off", "enable_seqscan": "off", "work_mem": "64MB"},
}

_STATISTICS_SQL = """
SELECT greatest(c.reltuples, 0), s.most_common_elems::text::text[], s.most_common_elem_freqs
FROM pg_class AS c
LEFT JOIN pg_stats AS s
    ON s.schemaname = current_schema() AND s.tablename = 'posts' AND s.attname = 'search_document'
WHERE c.oid = 'posts'::regclass
"""
_TREE_SQL = "SELECT querytree(websearch_to_tsquery(%s::regconfig, %s))"

# The posts a plan considers: the matches that pass {where} (the author, the cursor's seek or
# the window's bounds). A scan also ends about SEARCH_SCAN_POSTS posts from where it starts: at
# the created_at of the post that many ids back (ids are handed out in creation order; two
# primary-key lookups), or for one author at their post that many back in
# posts_author_created_idx. The walk's index condition stops there, so no estimate can make a
# scan read the table.
_MATCHES = """posts
WHERE search_document @@ websearch_to_tsquery(%s::regconfig, %s){where}"""
# INDEX: OFFSET 0 keeps a cursor's seek and a window's bounds out of the index scan; as a range
# of posts_created_idx they would join the GIN bitmap (BitmapAnd) and read much of that index.
_INDEXED = """(
    SELECT id, created_at, search_document FROM posts
    WHERE search_document @@ websearch_to_tsquery(%s::regconfig, %s){author}
    OFFSET 0
) AS posts
WHERE TRUE{where}"""
_SCAN_END = " AND created_at {towards} COALESCE(({post}), '{end}'::timestamptz)"
_POST_IDS_BACK = "SELECT created_at FROM posts WHERE id {compare} {start} {step} %s ORDER BY id {direction} LIMIT 1"
_AUTHOR_POSTS_BACK = (
    "SELECT created_at FROM posts WHERE TRUE{where} ORDER BY created_at {direction}, id {direction} OFFSET %s LIMIT 1"
)

_NEWEST_SQL = """
SELECT id, created_at, NULL::float8 AS rank
FROM {source}
ORDER BY created_at {direction}, id {direction}
LIMIT %s
"""
# The window (newest matches, with their rank), its edges for the cursor, and one page of it by
# rank. MATERIALIZED: the window is computed once, by its plan, and only it.
_RELEVANCE_SQL = """
WITH candidates AS MATERIALIZED (
    SELECT id, created_at, ts_rank(search_document, websearch_to_tsquery(%s::regconfig, %s))::float8 AS rank
    FROM {source}
    ORDER BY created_at DESC, id DESC
    LIMIT %s
)
SELECT c.id, c.created_at, c.rank, oldest.created_at, oldest.id, newest.created_at, newest.id,
    (SELECT count(*) FROM candidates) AS size
FROM candidates AS c,
    (SELECT created_at, id FROM candidates ORDER BY created_at, id LIMIT 1) AS oldest,
    (SELECT created_at, id FROM candidates ORDER BY created_at DESC, id DESC LIMIT 1) AS newest
WHERE TRUE{seek}
ORDER BY c.rank {direction}, c.id {direction}
LIMIT %s
"""
_WINDOW_BOUNDS = (
    " AND created_at >= %s AND (created_at > %s OR id >= %s) AND created_at <= %s AND (created_at < %s OR id <= %s)"
)

_SYMBOLS = re.compile(r"'(?:[^']|'')*'(?::[*A-D]+)?|<(?:-|\d+)>|[!&|()]")

Fragment = tuple[str, list[Any]]


@dataclass(frozen=True)
class Hit:
    """A matching post as the search found it; the view loads the page's posts by id."""

    id: int
    created_at: datetime
    rank: float | None


@dataclass(frozen=True)
class Statistics:
    posts: float
    shares: dict[str, float]
    taken_at: float


class _StatisticsCache:
    """search_document's statistics per process: reading pg_stats costs ~1 ms, a search ~0.1 ms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_alias: dict[str, Statistics] = {}

    def get(self, alias: str) -> Statistics:
        current = self._by_alias.get(alias)
        if current is not None and time.monotonic() - current.taken_at < settings.SEARCH_STATISTICS_TTL:
            return current
        with connections[alias].cursor() as cursor:
            cursor.execute(_STATISTICS_SQL)
            posts, words, shares = cursor.fetchone()
        fresh = Statistics(float(posts), dict(zip(words or (), shares or (), strict=False)), time.monotonic())
        with self._lock:
            self._by_alias[alias] = fresh
        return fresh

    def clear(self) -> None:
        with self._lock:
            self._by_alias.clear()


statistics = _StatisticsCache()


def estimate_share(tree: str, shares: dict[str, float]) -> float:
    """The share of posts a query tree (querytree's text) matches, words taken as independent."""
    symbols = _SYMBOLS.findall(tree)
    position = 0

    def peek() -> str | None:
        return symbols[position] if position < len(symbols) else None

    def take() -> str:
        nonlocal position
        position += 1
        return symbols[position - 1]

    def any_of() -> float:  # a | b: lowest precedence
        share = all_of()
        while peek() == "|":
            take()
            share = 1 - (1 - share) * (1 - all_of())
        return share

    def all_of() -> float:  # a & b
        share = phrase()
        while peek() == "&":
            take()
            share *= phrase()
        return share

    def phrase() -> float:  # a <-> b, a <2> b: at most as often as both words
        share = operand()
        while (symbol := peek()) is not None and symbol.startswith("<"):
            take()
            share *= operand()
        return share

    def operand() -> float:
        symbol = take() if peek() is not None else ""
        if symbol == "!":
            return 1 - operand()
        if symbol == "(":
            share = any_of()
            if peek() == ")":
                take()
            return share
        word = symbol.rsplit("'", 1)[0][1:].replace("''", "'")
        return shares.get(word, 0.0)

    return any_of() if symbols else 0.0


@dataclass(frozen=True)
class Search:
    text: str
    # querytree(): what the GIN index can use. '' when the text holds only stop words (nothing
    # matches), 'T' when nothing is indexable ("-word": most posts match).
    tree: str
    share: float
    author_id: int | None = None

    @property
    def matches_nothing(self) -> bool:
        return self.tree == ""

    def first_plan(self, wanted: int) -> str:
        """SCAN when the statistics expect `wanted` matches among the posts a scan reads."""
        if self.tree == "T" or self.share * settings.SEARCH_SCAN_POSTS >= wanted:
            return SCAN
        return INDEX


def parse(text: str, *, author_id: int | None = None) -> Search:
    """The search for `text`: its index tree (one round trip) and estimated share of posts."""
    alias = router.db_for_read(Post)
    known = statistics.get(alias)
    with connections[alias].cursor() as cursor:
        cursor.execute(_TREE_SQL, [SEARCH_CONFIG, text])
        tree = str(cursor.fetchone()[0] or "")
    return Search(text, tree, estimate_share(tree, known.shares), author_id)


def sort_keys(ordering: str) -> list[SortKey]:
    date, number = Post._meta.get_field("created_at"), Post._meta.get_field("id")
    if ordering == NEWEST:
        return [SortKey("created_at", True, date), SortKey("id", True, number)]
    return [SortKey("rank", True, FloatField()), SortKey("id", True, number)]


def window_fields(ordering: str) -> list[Any]:
    """What a relevance cursor carries besides its position: its window's oldest and newest
    match, and the plan that found the window."""
    if ordering == NEWEST:
        return []
    date, number = Post._meta.get_field("created_at"), Post._meta.get_field("id")
    return [date, number, date, number, CharField()]


def fetch(search: Search, ordering: str, page: PageQuery) -> tuple[list[Hit], list[Any] | None]:
    """One page of hits for the paginator (project.http.pagination.KeysetCursorPagination.paginate_rows)."""
    if search.matches_nothing:
        return [], None
    if ordering == NEWEST:
        return _newest(search, page), None
    return _relevant(search, page)


def _newest(search: Search, page: PageQuery) -> list[Hit]:
    def attempt(plan: str, *, time_limited: bool = False) -> list[tuple[Any, ...]] | None:
        return _run(plan, *_newest_query(search, plan, page), time_limited=time_limited)

    rows = _planned(search, page, attempt, found=len)
    return [Hit(*row) for row in rows]


def _newest_query(search: Search, plan: str, page: PageQuery) -> Fragment:
    seek, seek_params = _seek(sort_keys(NEWEST), page, prefix="")
    start_id = page.position[-1] if page.position is not None else None
    source, params = _source(search, plan, (seek, seek_params), start_id=start_id, reverse=page.reverse)
    sql = _NEWEST_SQL.format(source=source, direction="ASC" if page.reverse else "DESC")
    return sql, [*params, page.limit]


def newest_ids(search: Search, *, limit: int) -> list[int] | None:
    """Ids of the newest `limit` matches through the GIN index (the admin's search), or None
    when that takes longer than SEARCH_PLAN_TIMEOUT_MS: a search that common is walked."""
    rows = _run(INDEX, *_newest_query(search, INDEX, PageQuery(None, False, limit, None)), time_limited=True)
    return None if rows is None else [row[0] for row in rows]


def _relevant(search: Search, page: PageQuery) -> tuple[list[Hit], list[Any] | None]:
    seek_sql, seek_params = _seek(sort_keys(RELEVANCE), page, prefix="c.")
    direction = "ASC" if page.reverse else "DESC"
    bounds: Fragment = ("", [])
    if page.state is not None:
        oldest_at, oldest_id, newest_at, newest_id, plan = page.state
        if plan not in (SCAN, INDEX):
            raise ValidationError({"cursor": [INVALID_CURSOR]})
        bounds = (_WINDOW_BOUNDS, [oldest_at, oldest_at, oldest_id, newest_at, newest_at, newest_id])

    def attempt(plan: str, *, time_limited: bool = False) -> list[tuple[Any, ...]] | None:
        # Within a window's bounds a scan reads all the window spans, however many posts that is
        # now (a post committed late between them included), so the window stays the same.
        source, params = _source(search, plan, bounds, bounded=bool(bounds[0]))
        sql = _RELEVANCE_SQL.format(source=source, seek=seek_sql, direction=direction)
        window = settings.SEARCH_RELEVANCE_WINDOW
        return _run(
            plan,
            sql,
            [SEARCH_CONFIG, search.text, *params, window, *seek_params, page.limit],
            time_limited=time_limited,
        )

    if page.state is not None:
        rows = attempt(page.state[-1]) or []
        return [Hit(*row[:3]) for row in rows], page.state
    used: list[str] = []

    def attempt_noting_plan(plan: str, *, time_limited: bool = False) -> list[tuple[Any, ...]] | None:
        used.append(plan)
        return attempt(plan, time_limited=time_limited)

    rows = _planned(search, page, attempt_noting_plan, found=lambda rows: rows[0][7] if rows else 0)
    if not rows:
        return [], None
    return [Hit(*row[:3]) for row in rows], [*rows[0][3:7], used[-1]]


def _planned(
    search: Search,
    page: PageQuery,
    attempt: Callable[..., list[tuple[Any, ...]] | None],
    *,
    found: Callable[[list[tuple[Any, ...]]], int],
) -> list[tuple[Any, ...]]:
    """Rows of the first plan that answers: INDEX first within SEARCH_PLAN_TIMEOUT_MS when the
    search looks rare; SCAN, and INDEX after it when the scan `found` less than a page."""
    page_size = page.limit - 1
    if search.first_plan(page_size) == INDEX:
        rows = attempt(INDEX, time_limited=True)
        if rows is not None:
            return rows
    rows = attempt(SCAN) or []
    # Only an index-less search ("-word") stays with what the scan found: the GIN index would
    # read all of itself for it.
    if found(rows) < page_size and search.tree != "T":
        rows = attempt(INDEX) or []
    return rows


def _source(
    search: Search,
    plan: str,
    condition: Fragment,
    *,
    start_id: int | None = None,
    reverse: bool = False,
    bounded: bool = False,
) -> Fragment:
    """The FROM clause of a plan: the posts matching `search` (and its author) that pass
    `condition` (a seek or a window's bounds); for a scan not `bounded` already, only as far
    as SEARCH_SCAN_POSTS posts from `start_id` (the cursor's post; the newest without one)."""
    author, author_params = (" AND author_id = %s", [search.author_id]) if search.author_id is not None else ("", [])
    matches = [SEARCH_CONFIG, search.text]
    if plan == INDEX:
        return _INDEXED.format(author=author, where=condition[0]), [*matches, *author_params, *condition[1]]
    where, params = author + condition[0], [*author_params, *condition[1]]
    if bounded:
        return _MATCHES.format(where=where), [*matches, *params]
    direction = "ASC" if reverse else "DESC"
    if search.author_id is not None:
        post = _AUTHOR_POSTS_BACK.format(where=where, direction=direction)
        post_params = [*params, settings.SEARCH_SCAN_POSTS - 1]
    else:
        start = "(SELECT max(id) FROM posts)" if start_id is None else "%s"
        post = _POST_IDS_BACK.format(
            compare=">=" if reverse else "<=", start=start, step="+" if reverse else "-", direction=direction
        )
        # The post SEARCH_SCAN_POSTS - 1 ids back: with the start, the scan's SEARCH_SCAN_POSTS posts.
        post_params = [*([] if start_id is None else [start_id]), settings.SEARCH_SCAN_POSTS - 1]
    end = _SCAN_END.format(towards="<=" if reverse else ">=", post=post, end="infinity" if reverse else "-infinity")
    return _MATCHES.format(where=where + end), [*matches, *params, *post_params]


def _run(plan: str, sql: str, params: list[Any], *, time_limited: bool) -> list[tuple[Any, ...]] | None:
    """The rows of `sql` under `plan`; None when a time-limited run was cancelled at SEARCH_PLAN_TIMEOUT_MS."""
    alias = router.db_for_read(Post)
    values = dict(_PLAN_SETTINGS[plan])
    if time_limited:
        values["statement_timeout"] = str(settings.SEARCH_PLAN_TIMEOUT_MS)
    calls = ", ".join("set_config(%s, %s, true)" for _ in values)
    try:
        with transaction.atomic(using=alias):
            with connections[alias].cursor() as cursor:
                cursor.execute(f"SELECT {calls}", [part for pair in values.items() for part in pair])
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            # Undo the SET LOCALs even inside an outer transaction (a rolled-back savepoint).
            transaction.set_rollback(True, using=alias)
    except OperationalError as error:
        if time_limited and isinstance(error.__cause__, QueryCanceled):
            return None
        raise
    return rows


def _seek(keys: Sequence[SortKey], page: PageQuery, *, prefix: str) -> Fragment:
    if page.position is None:
        return "", []

    def compare(name: str, operator: str, value: Any) -> Fragment:
        return f"{prefix}{name} {operator} %s", [value]

    def connective(word: str) -> Callable[[Fragment, Fragment], Fragment]:
        return lambda left, right: (f"({left[0]} {word} {right[0]})", left[1] + right[1])

    sql, params = seek_condition(
        [(key.name, key.descending) for key in keys],
        page.position,
        reverse=page.reverse,
        compare=compare,
        both=connective("AND"),
        either=connective("OR"),
    )
    return f" AND {sql}", params
