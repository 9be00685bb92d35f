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

Each search runs with one of three plans, each fast where the others are slow (10M posts, 2
cores, measured in docs/performance.md):
- SCAN: walk posts_created_idx (posts_author_created_idx for one author) from the newest post
  (or the cursor) and check each post's document, about 0.2 us per post, and stop at the post
  SEARCH_SCAN_POSTS back: that bound is an index condition, so no estimate can make a scan read
  the table. For searches that fill a page within it.
- WEEKS: posts_search_weeks_gin (migration 0006), each post's words keyed by its week, read
  week by week (only weeks that hold posts) from the newest back as far as the post as many
  posts back (the author's, for one author) as the statistics expect to hold the page or
  window twice over (then twice as far until they hold it). For words the statistics know,
  whose posting lists are too long to read whole: two words in 1.5 % of posts each cost 13-15
  ms in the plain GIN index.
- INDEX: the GIN index on search_document, every match, sorted: for words the statistics do not
  know (rare), and OR searches.
The first plan is SCAN when PostgreSQL's statistics (search_document's most_common_elems, read
by each process every SEARCH_STATISTICS_TTL seconds, combined over the query: AND and phrases
multiply, OR adds, NOT complements) expect a page of matches within the scan twice over and,
for words the weekly index knows, walking posts until the page (or the relevance window) is
full costs less than the weekly candidates for it; and always for one author's search with
known words (Search.first_plan). Else WEEKS or INDEX. A word the statistics do not know is
taken as rare (it was below their cut-off at ANALYZE). A scan that ends short of a page gives
way to the index plan, unless it read every post (of the author) to its end; an index plan
still running after SEARCH_PLAN_TIMEOUT_MS (a search that became common since ANALYZE) gives
way to the scan.
Each plan forbids the others' scans for its statement: set_config(..., true) sent with it in
one string, which PostgreSQL runs as one implicit transaction.
"""

import functools
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.db import OperationalError, connections, router, transaction
from django.db.models import CharField, FloatField
from rest_framework.exceptions import ValidationError

from posts import selectors
from posts.models import SEARCH_CONFIG, Post
from project.db.errors import query_cancelled
from project.db.routing import read_transaction
from project.http.pagination import INVALID_CURSOR, PageQuery, SortKey, seek_condition

RELEVANCE, NEWEST = "relevance", "newest"
ORDERINGS = (RELEVANCE, NEWEST)
SCAN, INDEX, WEEKS = "scan", "index", "weeks"
PLANS = (SCAN, INDEX, WEEKS)
# The week of posts_search_weeks_gin's keys: posts_search_week() of migration 0006.
WEEK_SECONDS = 604_800

# Each plan forbids the others' scans for one statement (set_config local to it), and none may
# read the whole table. The index plans' bitmaps get work_mem enough to stay exact: a lossy
# bitmap rechecks every post of its pages.
_BITMAP_ONLY = {"enable_indexscan": "off", "enable_seqscan": "off", "work_mem": "64MB"}
_PLAN_SETTINGS = {SCAN: {"enable_bitmapscan": "off", "enable_seqscan": "off"}, INDEX: _BITMAP_ONLY, WEEKS: _BITMAP_ONLY}

_STATISTICS_SQL = """
SELECT greatest(c.reltuples, 0), s.most_common_elems::text::text[], s.most_common_elem_freqs,
    (SELECT min(created_at) FROM posts), (SELECT max(created_at) FROM posts)
FROM pg_class AS c
LEFT JOIN pg_stats AS s
    ON s.schemaname = current_schema() AND s.tablename = 'posts' AND s.attname = 'search_document'
WHERE c.oid = 'posts'::regclass
"""
# The query's index tree: what the GIN indexes can use of it.
_TREE_SQL = "SELECT querytree(websearch_to_tsquery(%s::regconfig, %s))"
# The oldest and newest post a search can find (where a WEEKS plan starts and ends), and {more}:
# index lookups, in the round trip of the first statement that needs them.
_SPAN_SQL = """
SELECT (SELECT min(created_at) FROM posts WHERE TRUE{author}),
    (SELECT max(created_at) FROM posts WHERE TRUE{author}){more}
"""

# The posts a plan considers: the matches that pass {where} (the author, the cursor's seek or
# the window's bounds). A scan also ends about SEARCH_SCAN_POSTS posts from where it starts: at
# the created_at of the post that many ids back (ids are handed out in creation order; two
# primary-key lookups), or for one author at their post that many back in
# posts_author_created_idx. The walk's index condition stops there, so no estimate can make a
# scan read the table.
_MATCHES = """posts
WHERE search_document @@ websearch_to_tsquery(%s::regconfig, %s){where}"""
# INDEX: OFFSET 0 keeps a cursor's seek, a window's bounds and the author out of the index scan;
# as a range of posts_created_idx (posts_author_created_idx) they would join the GIN bitmap
# (BitmapAnd) and read much of that index: two words in one author's 560,000 posts of 10M took
# 12-24 s that way, each week's candidates ANDed with the author's every post.
_INDEXED = """(
    SELECT id, created_at, author_id, search_document FROM posts
    WHERE search_document @@ websearch_to_tsquery(%s::regconfig, %s)
    OFFSET 0
) AS posts
WHERE TRUE{author}{where}"""
_SCAN_END = " AND created_at {towards} COALESCE(({post}), '{end}'::timestamptz)"
_POST_IDS_BACK = "SELECT created_at FROM posts WHERE id {compare} {start} {step} %s ORDER BY id {direction} LIMIT 1"
_AUTHOR_POSTS_BACK = (
    "SELECT created_at FROM posts WHERE TRUE{where} ORDER BY created_at {direction}, id {direction} OFFSET %s LIMIT 1"
)

# WEEKS: the matches of each week from posts_search_weeks_gin (a few GIN probes per week); OFFSET
# 0 keeps the seek, bounds and author out of it, as for INDEX. ts_match_vq is @@ written as a function:
# as an operator, the GIN index on search_document would join the weekly bitmap (BitmapAnd) and
# read the words' whole posting lists again. {keys}: the week's key of each word, written out
# ("week::text || ':databas'"): a SQL function building them ran once per week, ~9 % of the
# statement (migration 0007). The statement orders by week first (_by_time), the order the weeks
# come in: PostgreSQL then sorts week by week (Incremental Sort) and stops reading weeks once its
# LIMIT is met, so weeks past the page or window cost nothing (two words' window over a 41-week
# span of 10M posts: 21 weeks read, 8.0 -> 2.4 ms).
# The weeks are those that hold posts (of the author, for one author's search), from the first
# towards the last: each the week of the next post beyond the previous week, one index-only
# descent of posts_created_idx (posts_author_created_idx) per week, ~5-14 us. Every calendar
# week instead cost 3.5-7 us of GIN probes for each empty one: 0.5-1.1 ms of a search behind the
# three years between the seed and the bench's own posts, and one author's search read every
# author's candidates of weeks the author never posted in. The descents need the index scans
# the search forbids, so the statement that sets the plan's settings, planned before they apply,
# finds the weeks and hands them to the search in a setting of the transaction both run in.
_WEEKS_SETTING = "postline.search_weeks"
_WEEKS_WITH_POSTS = """set_config('{setting}', COALESCE((
    WITH RECURSIVE weeks(week) AS (
        SELECT %s::bigint
        UNION ALL
        SELECT (
            SELECT posts_search_week({edge}(created_at)) FROM posts
            WHERE created_at {beyond} to_timestamp((week{next}) * {week_seconds}){author}
        )
        FROM weeks WHERE week {before} %s
    )
    SELECT array_agg(week)::text FROM weeks WHERE week {within} %s
), '{{}}'), true)"""
# Towards the oldest post, and towards the newest: how the week after a week with posts is found.
_WEEK_STEPS = {
    "DESC": {"edge": "max", "beyond": "<", "next": "", "before": ">", "within": ">="},
    "ASC": {"edge": "min", "beyond": ">=", "next": " + 1", "before": "<", "within": "<="},
}
_WEEKS = """(
    SELECT week FROM unnest(current_setting('{setting}')::bigint[]) AS week ORDER BY week {direction}
) AS weeks,
LATERAL (
    SELECT id, created_at, author_id, search_document FROM posts
    WHERE posts_search_keys(created_at, search_document) @> ARRAY[{keys}]
        AND ts_match_vq(search_document, websearch_to_tsquery(%s::regconfig, %s))
    OFFSET 0
) AS posts
WHERE TRUE{author}{where}"""

_NEWEST_SQL = """
SELECT id, created_at, NULL::float8 AS rank
FROM {source}
ORDER BY {by_time}
LIMIT %s
"""
# The window (newest matches, with their rank), its edges for the cursor, and one page of it by
# rank. MATERIALIZED: the window is computed once, by its plan, and only it.
_RELEVANCE_SQL = """
WITH candidates AS MATERIALIZED (
    SELECT id, created_at, ts_rank(search_document, websearch_to_tsquery(%s::regconfig, %s))::float8 AS rank
    FROM {source}
    ORDER BY {by_time}
    LIMIT %s
)
SELECT c.id, c.created_at, c.rank, oldest.created_at AS oldest_at, oldest.id AS oldest_id,
    newest.created_at AS newest_at, newest.id AS newest_id, (SELECT count(*) FROM candidates) AS size
FROM candidates AS c,
    (SELECT created_at, id FROM candidates ORDER BY created_at, id LIMIT 1) AS oldest,
    (SELECT created_at, id FROM candidates ORDER BY created_at DESC, id DESC LIMIT 1) AS newest
WHERE TRUE{seek}
ORDER BY c.rank {direction}, c.id {direction}
LIMIT %s
"""
# The hits of either statement above with their posts, as a post read loads them, in the
# statement's own round trip: reading them after it cost a statement per search (~0.3 ms of
# CPU on each side, a thirtieth of a search).
_WITH_POSTS = """
SELECT hits.*, {columns}
FROM ({hits}) AS hits
JOIN posts ON posts.id = hits.id
JOIN users ON users.id = posts.author_id
ORDER BY {order}
"""
_WINDOW_BOUNDS = (
    " AND created_at >= %s AND (created_at > %s OR id >= %s) AND created_at <= %s AND (created_at < %s OR id <= %s)"
)

# What the statistics' estimates are multiplied by where falling short costs a second statement.
ESTIMATE_MARGIN = 2
# The plans' costs in PostgreSQL, measured on 10M posts (docs/performance.md): a post the scan
# walks and checks (0.2-0.36 us), a candidate the weekly index hands over, fetched and checked.
SCAN_POST_US, WEEKLY_CANDIDATE_US = 0.3, 1.5
# The share of posts holding two words that hold them as a phrase: the statistics know words, not
# their order. 0.28 in the seed's text ("every library": 12,290 posts of the 44,118 with both).
PHRASE_SHARE = 0.28

_SYMBOLS = re.compile(r"'(?:[^']|'')*'(?::[*A-D]+)?|<(?:-|\d+)>|[!&|()]")

Fragment = tuple[str, list[Any]]


class Source(NamedTuple):
    """A plan's FROM clause, and what the statement setting the plan's settings also sets."""

    sql: str
    params: list[Any]
    setting: Fragment = ("", [])


@dataclass(frozen=True)
class Hit:
    """A matching post as the search found it (the paginator's cursor reads the first three)."""

    id: int
    created_at: datetime
    rank: float | None
    post: Post


@dataclass(frozen=True)
class Statistics:
    posts: float
    shares: dict[str, float]
    # Over the whole table: the weekly index's candidates for a word are every author's.
    posts_per_week: float
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
            posts, words, shares, oldest, newest = cursor.fetchone()
        weeks = _week(newest) - _week(oldest) + 1 if oldest is not None and newest is not None else 0
        fresh = Statistics(
            float(posts),
            dict(zip(words or (), shares or (), strict=False)),
            float(posts) / weeks if weeks else 0.0,
            time.monotonic(),
        )
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

    def phrase() -> float:  # a <-> b, a <2> b: less often than both words anywhere in a post
        share = operand()
        while (symbol := peek()) is not None and symbol.startswith("<"):
            take()
            share *= operand() * PHRASE_SHARE
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
        return shares.get(_word(symbol), 0.0)

    return any_of() if symbols else 0.0


@dataclass(frozen=True)
class Search:
    text: str
    # querytree(): what the GIN index can use. '' when the text holds only stop words (nothing
    # matches), 'T' when nothing is indexable ("-word": most posts match).
    tree: str
    share: float
    # The words every match holds, when the statistics know them all (long posting lists):
    # such a search goes to posts_search_weeks_gin instead of the GIN index on search_document.
    words: tuple[str, ...] = ()
    posts: float = 0.0  # posts in the table, as the statistics last counted them
    posts_per_week: float = 0.0  # likewise
    author_id: int | None = None

    @property
    def matches_nothing(self) -> bool:
        return self.tree == ""

    @property
    def index_plan(self) -> str:
        return WEEKS if self.words else INDEX

    def first_plan(self, wanted: int, *, fill: int | None = None) -> str:
        """SCAN when the statistics expect `wanted` matches (a page) among the posts a scan
        reads, twice over for their error (a scan that falls short costs its whole walk before
        the next plan), and when walking posts until `fill` matches (the relevance window; a
        page by default) costs less than reading the weekly index's candidates for them, a
        whole week's at least. Else the index plan. One author's search with words the
        statistics know is scanned first: the scan walks the author's posts alone."""
        if self.tree == "T":
            return SCAN
        if self.words and self.author_id is not None:
            # The scan walks the author's posts alone (all of them, for most authors: exact),
            # where the weekly index hands over every author's candidates of each week.
            return SCAN
        if self.share * settings.SEARCH_SCAN_POSTS < ESTIMATE_MARGIN * wanted:
            return self.index_plan
        if not self.words:  # INDEX reads every match: the scan is the bounded plan
            return SCAN
        fill = fill or wanted
        scan_us = min(settings.SEARCH_SCAN_POSTS, fill / self.share) * SCAN_POST_US
        weeks_us = max(ESTIMATE_MARGIN * fill, self.posts_per_week * self.share) * WEEKLY_CANDIDATE_US
        return SCAN if scan_us <= weeks_us else WEEKS


def parse(text: str, *, author_id: int | None = None) -> Search:
    """The search for `text`: its index tree and its estimated share of posts. No round trip
    but the first time a process sees the text (and the statistics' every few minutes)."""
    known = statistics.get(router.db_for_read(Post))
    tree = query_tree(text)
    words = required_words(tree)
    weekly = words if words and all(word in known.shares for word in words) else ()
    share = estimate_share(tree, known.shares)
    return Search(text, tree, share, weekly, known.posts, known.posts_per_week, author_id)


@functools.lru_cache(maxsize=4096)
def query_tree(text: str) -> str:
    """querytree() of the text's tsquery: it depends on the text and the text search
    configuration only, so each process asks PostgreSQL once per text (a round trip of ~0.3 ms
    of CPU on both sides, a twentieth of a search)."""
    with connections[router.db_for_read(Post)].cursor() as cursor:
        cursor.execute(_TREE_SQL, [SEARCH_CONFIG, text])
        (tree,) = cursor.fetchone()
    return str(tree or "")


def required_words(tree: str) -> tuple[str, ...]:
    """The words every match of a query tree holds: all of them, but for a NOT; none with an OR
    (either side may match) or a NOT of a group."""
    symbols = _SYMBOLS.findall(tree)
    if "|" in symbols or re.search(r"!\s*\(", tree):
        return ()
    words = [
        _word(symbol)
        for index, symbol in enumerate(symbols)
        if symbol.startswith("'") and (index == 0 or symbols[index - 1] != "!")
    ]
    return tuple(dict.fromkeys(words))


def _word(symbol: str) -> str:
    """The lexeme of a querytree operand: 'it''s' -> it's (a weight or prefix mark dropped)."""
    return symbol.rsplit("'", 1)[0][1:].replace("''", "'")


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


Rows = list[tuple[Any, ...]]


def _newest(search: Search, page: PageQuery) -> list[Hit]:
    def attempt(plan: str, *, time_limited: bool = False) -> Rows | None:
        return _newest_rows(search, plan, page, time_limited=time_limited)

    _, rows = _planned(search, page, attempt, found=len, scan_read_all=lambda: _scan_reads_all(search, page))
    return _hits(rows)


def _newest_rows(search: Search, plan: str, page: PageQuery, *, time_limited: bool) -> Rows | None:
    """Up to page.limit matches from the cursor on, newest first (oldest first when reversed)."""
    seek, start_id = _newest_start(page)
    direction = "ASC" if page.reverse else "DESC"

    def run(weeks: tuple[int, int] | None) -> Rows | None:
        source = _source(search, plan, seek, start_id=start_id, reverse=page.reverse, weeks=weeks)
        sql = _with_posts(_NEWEST_SQL.format(source=source.sql, by_time=_by_time(plan, direction)), NEWEST, direction)
        return _run(plan, sql, [*source.params, page.limit], time_limited=time_limited, setting=source.setting)

    if plan != WEEKS:
        return run(None)
    start = (page.position[0], page.position[-1]) if page.position is not None else None
    return _week_by_week(
        search, start, seek, page.reverse, page.limit, run, enough=lambda rows: len(rows) >= page.limit
    )


def _week_by_week(
    search: Search,
    start: tuple[datetime, int] | None,
    seek: Fragment,
    reverse: bool,
    wanted: int,
    run: Callable[[tuple[int, int]], Rows | None],
    *,
    enough: Callable[[Rows], bool],
) -> Rows | None:
    """`run` over the weeks from `start`'s (created_at, id; the newest post's without one; `seek`:
    the posts past it) towards the oldest (the newest when `reverse`): as far as the post as many
    posts away as the statistics expect to hold `wanted` matches twice over, then twice as far
    each time, until its rows are `enough` or no week is left. Counted in posts, not weeks, the
    span follows the posts' density: a quiet spell holds few posts, and a week of bulk imports
    many; for one author's search, the author's posts."""
    start_id = start[1] if start else None
    away = _posts_expected(search, wanted)
    oldest_at, newest_at, beyond = _span(search, also=_posts_away(search, seek, start_id, away, reverse=reverse))
    if oldest_at is None or newest_at is None:
        return []
    oldest, newest = _week(oldest_at), _week(newest_at)

    def within_posts(moment: datetime) -> int:
        # A cursor outside the posts' span (a tampered one, say) starts at its edge.
        return min(max(_week(moment), oldest), newest)

    first = within_posts(start[0] if start else newest_at)
    last = newest if reverse else oldest
    while True:
        # Ids are handed out in creation order; a post dated out of that order moves the span's
        # end at most back to `first`.
        far = last if beyond is None else within_posts(beyond)
        far = max(far, first) if reverse else min(far, first)
        rows = run((first, far))
        if rows is None or enough(rows) or far == last:
            return rows
        away *= 2
        beyond = _value(_posts_away(search, seek, start_id, away, reverse=reverse))


def _posts_expected(search: Search, wanted: int) -> int:
    """How many posts the statistics expect `wanted` matches in, twice over for their error."""
    if not search.share:
        return max(wanted, math.ceil(search.posts))
    return max(wanted, math.ceil(ESTIMATE_MARGIN * wanted / search.share))


def _value(query: Fragment) -> Any:
    """The value of a scalar query, None without a row."""
    with connections[router.db_for_read(Post)].cursor() as cursor:
        cursor.execute(*query)
        row = cursor.fetchone()
    return row[0] if row else None


def _posts_away(search: Search, seek: Fragment, start_id: int | None, away: int, *, reverse: bool) -> Fragment:
    """The query for created_at of the post `away` posts older than the start (newer when
    `reverse`), None past the end: for one author's search, `away` of the author's posts past
    `seek` in posts_author_created_idx; else `away` ids from `start_id` (the newest post's without
    one), ids being handed out in creation order: one primary-key lookup."""
    if search.author_id is None:
        return _ids_away(start_id, away, reverse=reverse)
    author, author_params = _author(search.author_id)
    sql = _AUTHOR_POSTS_BACK.format(where=author + seek[0], direction="ASC" if reverse else "DESC")
    return sql, [*author_params, *seek[1], away]


def _scan_reads_all(search: Search, page: PageQuery) -> bool:
    """Whether a scan from the page's start (the newest post without a cursor) reads every post
    (of the author) to the end: then what it found is every match, and no index plan need look
    again (one author's few posts, say)."""
    seek, start_id = _newest_start(page)
    return _value(_posts_away(search, seek, start_id, settings.SEARCH_SCAN_POSTS - 1, reverse=page.reverse)) is None


def _newest_start(page: PageQuery) -> tuple[Fragment, int | None]:
    """Where a newest-first walk of `page` starts: the seek past its cursor and the cursor's id
    (none without a cursor: the newest post)."""
    return _seek(sort_keys(NEWEST), page, prefix=""), page.position[-1] if page.position is not None else None


def _ids_away(start_id: int | None, away: int, *, reverse: bool) -> Fragment:
    """The query for created_at of the post `away` ids from `start_id` (the newest post's id
    without one): older, or newer when `reverse`."""
    start = "(SELECT max(id) FROM posts)" if start_id is None else "%s"
    sql = _POST_IDS_BACK.format(
        compare=">=" if reverse else "<=",
        start=start,
        step="+" if reverse else "-",
        direction="ASC" if reverse else "DESC",
    )
    return sql, [*([] if start_id is None else [start_id]), away]


def _span(search: Search, *, also: Fragment = ("", [])) -> tuple[Any, ...]:
    """The oldest and newest post `search` can find (None without posts), and the value of the
    scalar query `also` if given: one round trip."""
    author, author_params = _author(search.author_id)
    more = f", ({also[0]})" if also[0] else ""
    with connections[router.db_for_read(Post)].cursor() as cursor:
        cursor.execute(_SPAN_SQL.format(author=author, more=more), [*author_params, *author_params, *also[1]])
        return tuple(cursor.fetchone())


def _window_weeks(search: Search, oldest_at: datetime, newest_at: datetime) -> tuple[int, int]:
    """The weeks of a window's edges, newest first, within the posts' span (a tampered cursor's
    edges may lie centuries apart)."""
    first_at, last_at = _span(search)
    if first_at is None or last_at is None:
        return (0, 0)  # no posts: one week, of none
    low, high = _week(first_at), _week(last_at)
    return (min(max(_week(newest_at), low), high), min(max(_week(oldest_at), low), high))


def newest_ids(search: Search, *, limit: int) -> list[int] | None:
    """Ids of the newest `limit` matches through an index (the admin's search), or None when
    that takes longer than SEARCH_PLAN_TIMEOUT_MS: a search that common is walked."""
    rows = _newest_rows(search, search.index_plan, PageQuery(None, False, limit, None), time_limited=True)
    return None if rows is None else [row[0] for row in rows]


def _relevant(search: Search, page: PageQuery) -> tuple[list[Hit], list[Any] | None]:
    seek_sql, seek_params = _seek(sort_keys(RELEVANCE), page, prefix="c.")
    direction = "ASC" if page.reverse else "DESC"
    window = settings.SEARCH_RELEVANCE_WINDOW

    def run(plan: str, bounds: Fragment, weeks: tuple[int, int] | None, *, time_limited: bool) -> Rows | None:
        # Within a window's bounds a plan reads all the window spans, however many posts that is
        # now (a post committed late between them included), so the window stays the same.
        source = _source(search, plan, bounds, bounded=bool(bounds[0]), weeks=weeks)
        sql = _with_posts(
            _RELEVANCE_SQL.format(
                source=source.sql, by_time=_by_time(plan, "DESC"), seek=seek_sql, direction=direction
            ),
            RELEVANCE,
            direction,
        )
        params = [SEARCH_CONFIG, search.text, *source.params, window, *seek_params, page.limit]
        return _run(plan, sql, params, time_limited=time_limited, setting=source.setting)

    def attempt(plan: str, *, time_limited: bool = False) -> Rows | None:
        if plan != WEEKS:
            return run(plan, ("", []), None, time_limited=time_limited)
        # The window is the newest `window` matches: weeks from the newest post's until they hold that many.
        return _week_by_week(
            search,
            None,
            ("", []),
            False,
            window,
            lambda weeks: run(WEEKS, ("", []), weeks, time_limited=time_limited),
            enough=lambda rows: bool(rows) and rows[0][7] >= window,
        )

    if page.state is not None:
        oldest_at, oldest_id, newest_at, newest_id, plan = page.state
        if plan not in PLANS:
            raise ValidationError({"cursor": [INVALID_CURSOR]})
        if plan == WEEKS and not search.words:
            # The weekly index needs the words every match holds: without them (a cursor of
            # another search, or statistics that forgot a word since) it would read every post
            # of the window's weeks. Within the window's bounds any plan finds the same matches.
            plan = search.index_plan
        bounds = (_WINDOW_BOUNDS, [oldest_at, oldest_at, oldest_id, newest_at, newest_at, newest_id])
        weeks = _window_weeks(search, oldest_at, newest_at) if plan == WEEKS else None
        rows = run(plan, bounds, weeks, time_limited=False) or []
        return _hits(rows), page.state
    plan, rows = _planned(
        search,
        page,
        attempt,
        found=lambda rows: rows[0][7] if rows else 0,
        scan_read_all=lambda: _scan_reads_all(search, PageQuery(None, False, page.limit, None)),
        fill=window,
    )
    if not rows:
        return [], None
    return _hits(rows), [*rows[0][3:7], plan]


def _planned(
    search: Search,
    page: PageQuery,
    attempt: Callable[..., Rows | None],
    *,
    found: Callable[[Rows], int],
    scan_read_all: Callable[[], bool],
    fill: int | None = None,
) -> tuple[str, Rows]:
    """The plan that answered and its rows: the index plan first within SEARCH_PLAN_TIMEOUT_MS
    when Search.first_plan says so (`fill`: the matches the plan gathers, a page by default);
    SCAN, and the index plan after it when the scan `found` less than a page, unless it read
    every post there is from its start (`scan_read_all`)."""
    page_size = page.limit - 1
    if search.first_plan(page_size, fill=fill) != SCAN:
        rows = attempt(search.index_plan, time_limited=True)
        if rows is not None:
            return search.index_plan, rows
    rows = attempt(SCAN) or []
    # Only an index-less search ("-word") stays with what the scan found: the GIN index would
    # read all of itself for it.
    if found(rows) < page_size and search.tree != "T" and not scan_read_all():
        return search.index_plan, attempt(search.index_plan) or []
    return SCAN, rows


def _source(
    search: Search,
    plan: str,
    condition: Fragment,
    *,
    start_id: int | None = None,
    reverse: bool = False,
    bounded: bool = False,
    weeks: tuple[int, int] | None = None,
) -> Source:
    """The FROM clause of a plan: the posts matching `search` (and its author) that pass
    `condition` (a seek or a window's bounds); for WEEKS those of `weeks` (first, last); for a
    scan not `bounded` already, only as far as SEARCH_SCAN_POSTS posts from `start_id` (the
    cursor's post; the newest without one)."""
    author, author_params = _author(search.author_id)
    matches = [SEARCH_CONFIG, search.text]
    if plan == WEEKS:
        if weeks is None:
            raise ValueError("a WEEKS plan reads given weeks")
        first, last = weeks
        direction = "ASC" if reverse else "DESC"
        keys = ", ".join("week::text || %s" for _ in search.words)
        source = _WEEKS.format(
            setting=_WEEKS_SETTING, direction=direction, keys=keys, author=author, where=condition[0]
        )
        with_posts = _WEEKS_WITH_POSTS.format(
            setting=_WEEKS_SETTING, **_WEEK_STEPS[direction], week_seconds=WEEK_SECONDS, author=author
        )
        week_suffixes = [f":{word}" for word in search.words]
        return Source(
            source,
            [*week_suffixes, *matches, *author_params, *condition[1]],
            (with_posts, [first, *author_params, last, last]),
        )
    if plan == INDEX:
        return Source(_INDEXED.format(author=author, where=condition[0]), [*matches, *author_params, *condition[1]])
    where, params = author + condition[0], [*author_params, *condition[1]]
    if bounded:
        return Source(_MATCHES.format(where=where), [*matches, *params])
    # The post SEARCH_SCAN_POSTS - 1 posts away: with the start, the scan's SEARCH_SCAN_POSTS posts.
    post, post_params = _posts_away(search, condition, start_id, settings.SEARCH_SCAN_POSTS - 1, reverse=reverse)
    end = _SCAN_END.format(towards="<=" if reverse else ">=", post=post, end="infinity" if reverse else "-infinity")
    return Source(_MATCHES.format(where=where + end), [*matches, *params, *post_params])


def _with_posts(hits: str, ordering: str, direction: str) -> str:
    """The statement of `hits` (a page of _NEWEST_SQL or _RELEVANCE_SQL) with their posts."""
    order = ", ".join(f"hits.{key.name} {direction}" for key in sort_keys(ordering))
    return _WITH_POSTS.format(hits=hits, columns=selectors.POST_COLUMNS, order=order)


def _hits(rows: Rows) -> list[Hit]:
    """The hits and their posts from rows of _WITH_POSTS."""
    alias = router.db_for_read(Post)
    count = selectors.POST_COLUMN_COUNT
    return [Hit(row[0], row[1], row[2], post=selectors.post_from_row(alias, row[-count:])) for row in rows]


def _by_time(plan: str, direction: str) -> str:
    """The order of matches by time, newest first (oldest with ASC); for WEEKS by their week
    first, the order its source hands the weeks over in."""
    order = f"created_at {direction}, id {direction}"
    return f"week {direction}, {order}" if plan == WEEKS else order


def _week(moment: datetime) -> int:
    """posts_search_week() of migration 0006, for the weeks a WEEKS plan reads."""
    return math.floor(moment.timestamp() / WEEK_SECONDS)


# A last statement after a time-limited one. A statement_timeout that fires after the statement's
# last check for interrupts stays pending (PostgreSQL clears only a timer still running), and
# the connection's next command is cancelled in its place: in make bench (2026-12-06, ~150,000
# searches) the query after a search that met its limit at ~100 ms answered 503. This statement
# is that next command, in the same string, so the late cancel reads as the time limit it is.
_AFTER_TIME_LIMIT = ";\nSELECT 1"


def _run(
    plan: str, sql: str, params: list[Any], *, time_limited: bool, setting: Fragment = ("", [])
) -> list[tuple[Any, ...]] | None:
    """The rows of `sql` under `plan` (and `setting`, a set_config call of its source); None when
    a time-limited run was cancelled at SEARCH_PLAN_TIMEOUT_MS."""
    values = dict(_PLAN_SETTINGS[plan])
    if time_limited:
        values["statement_timeout"] = str(settings.SEARCH_PLAN_TIMEOUT_MS)
    calls = ", ".join(["set_config(%s, %s, true)" for _ in values] + ([setting[0]] if setting[0] else []))
    # The settings and the search in one string (client-side binding sends it as one simple
    # query): PostgreSQL runs it as one implicit transaction, which the settings end with. No
    # BEGIN and ROLLBACK, two round trips of the four this took.
    statement = f"SELECT {calls};\n{sql}{_AFTER_TIME_LIMIT if time_limited else ''}"
    statement_params = [*(part for pair in values.items() for part in pair), *setting[1], *params]

    def read(alias: str) -> list[tuple[Any, ...]]:
        with connections[alias].cursor() as cursor:
            cursor.execute(statement, statement_params)
            cursor.nextset()
            return cursor.fetchall()

    def rolled_back(alias: str) -> list[tuple[Any, ...]]:
        rows = read(alias)
        transaction.set_rollback(True, using=alias)
        return rows

    alias = router.db_for_read(Post)
    try:
        if connections[alias].in_atomic_block:
            # Inside a transaction the settings would outlive the statement: a savepoint,
            # rolled back, undoes them.
            return read_transaction(Post, rolled_back)
        # Alone, the statement is safe to repeat: the replica backend runs it again on the
        # primary if its connection is lost.
        return read(alias)
    except OperationalError as error:
        if time_limited and query_cancelled(error):
            return None
        raise


def _author(author_id: int | None) -> Fragment:
    """The condition that keeps one author's posts (none without an author)."""
    return (" AND author_id = %s", [author_id]) if author_id is not None else ("", [])


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
