"""Full-text search (posts/search.py): relevance within its window, newest first, exact cursors,
the plan each search shape gets and the plans' SQL (EXPLAIN)."""

import re
from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection, transaction
from django.db.models import Max
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from posts import search
from posts.models import Post
from tests.factories import PostFactory, UserFactory

pytestmark = pytest.mark.django_db
URL = "/api/posts/"


def posts_at(*texts: str, author=None, start=None) -> list[Post]:
    """Posts with these bodies, oldest first, one minute apart (ids in the same order), by
    default after every post already there."""
    author = author or UserFactory.create()
    latest = Post.objects.aggregate(latest=Max("created_at"))["latest"]
    start = start or (latest or timezone.now() - timedelta(days=1)) + timedelta(minutes=1)
    return Post.objects.bulk_create(
        Post(author=author, title="Note", body=text, created_at=start + timedelta(minutes=index))
        for index, text in enumerate(texts)
    )


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def collect(client, url: str) -> list[int]:
    found: list[int] = []
    while url:
        response = client.get(url)
        found += ids(response)
        url = response.json()["next"]
    return found


def cursor_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["cursor"][0]


def analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE posts")
    search.statistics.clear()


# --- what the orderings return ---------------------------------------------------------------


def test_posts_that_repeat_the_word_rank_above_posts_that_mention_it_once(api_client) -> None:
    once, thrice, twice = posts_at(
        "A harbor at dusk.", "Harbor, harbor and one more harbor.", "The harbor and the old harbor."
    )
    posts_at("Nothing to see here.")
    assert ids(api_client.get(URL, {"search": "harbor"})) == [thrice.pk, twice.pk, once.pk]
    assert ids(api_client.get(URL, {"search": "harbor", "ordering": "relevance"})) == [thrice.pk, twice.pk, once.pk]


def test_newest_lists_every_match_newest_first(api_client) -> None:
    matches = posts_at("Harbor, harbor, harbor.", "A harbor.", "Two harbors, a harbor.", "A lake.")[:3]
    assert ids(api_client.get(URL, {"search": "harbor", "ordering": "newest"})) == [p.pk for p in reversed(matches)]


def test_relevance_ranks_only_the_newest_matches_of_its_window(api_client, settings) -> None:
    settings.SEARCH_RELEVANCE_WINDOW = 3
    oldest_best = posts_at("Harbor harbor harbor harbor harbor.")[0]
    window = posts_at("A harbor.", "Harbor and harbor.", "One harbor.", start=timezone.now() - timedelta(hours=1))
    found = ids(api_client.get(URL, {"search": "harbor"}))
    assert found == [window[1].pk, window[2].pk, window[0].pk]  # ties: newest first
    assert oldest_best.pk not in found
    assert oldest_best.pk in ids(api_client.get(URL, {"search": "harbor", "ordering": "newest"}))


def test_a_common_search_ranks_the_matches_among_the_newest_posts(api_client, settings) -> None:
    """With a page of matches among the newest SEARCH_SCAN_POSTS posts, the window stops there."""
    settings.SEARCH_SCAN_POSTS = 4
    old = posts_at("Harbor harbor harbor.", start=timezone.now() - timedelta(days=2))[0]
    recent = posts_at("A harbor.", "One harbor.", "The harbor.", "A harbor again.")
    analyze()  # the statistics now put "harbor" in every post: the scan goes first
    found = ids(api_client.get(URL, {"search": "harbor", "page_size": 2}))
    assert len(found) == 2
    assert old.pk not in collect(api_client, f"{URL}?search=harbor&page_size=2")
    assert set(collect(api_client, f"{URL}?search=harbor&page_size=2")) == {p.pk for p in recent}


def test_a_search_too_rare_for_the_scan_ranks_its_newest_matches_of_all(api_client, settings) -> None:
    settings.SEARCH_SCAN_POSTS = 2
    matches = posts_at("Harbor harbor.", "A harbor.")
    posts_at(*["A lake."] * 5)
    analyze()
    assert ids(api_client.get(URL, {"search": "harbor"})) == [matches[0].pk, matches[1].pk]


def test_only_stop_words_find_nothing_without_a_search_query(api_client, django_assert_max_num_queries) -> None:
    posts_at("The cat and the dog.")
    search.statistics.get("default")
    with django_assert_max_num_queries(1):  # the query tree only
        assert ids(api_client.get(URL, {"search": "the and"})) == []


def test_a_search_excluding_a_word_lists_the_other_posts(api_client) -> None:
    kept, _ = posts_at("A lake at dawn.", "A harbor at dusk.")
    for ordering in search.ORDERINGS:
        assert ids(api_client.get(URL, {"search": "-harbor", "ordering": ordering})) == [kept.pk]


def test_one_authors_posts_are_searched_alone(api_client) -> None:
    mine = posts_at("A harbor.", "Another harbor.")
    posts_at("Their harbor.")
    for ordering in search.ORDERINGS:
        found = ids(api_client.get(URL, {"search": "harbor", "author": mine[0].author_id, "ordering": ordering}))
        assert sorted(found) == sorted(p.pk for p in mine)


# --- cursors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ordering", search.ORDERINGS)
@pytest.mark.parametrize("page_size", [1, 3])
def test_paging_a_search_returns_each_result_once_while_posts_are_created(api_client, ordering, page_size) -> None:
    author = UserFactory.create()
    posts_at(*[f"Harbor {'harbor ' * (index % 3)}note {index}." for index in range(10)], author=author)
    posts_at("A lake.")
    expected = ids(api_client.get(URL, {"search": "harbor", "ordering": ordering, "page_size": 100}))
    url = f"{URL}?search=harbor&ordering={ordering}&page_size={page_size}"
    seen: list[int] = []
    while url:
        page = api_client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        PostFactory.create(author=author, title="Harbor harbor harbor harbor", body="New.")  # ranks first
        url = page["next"]
    assert seen == expected


@pytest.mark.parametrize("ordering", search.ORDERINGS)
def test_previous_link_walks_back_a_search(api_client, ordering) -> None:
    posts_at(*[f"Harbor {'harbor ' * (index % 4)}{index}." for index in range(7)])
    first = api_client.get(URL, {"search": "harbor", "ordering": ordering, "page_size": 3}).json()
    second = api_client.get(first["next"]).json()
    back = api_client.get(second["previous"]).json()
    assert [row["id"] for row in back["results"]] == [row["id"] for row in first["results"]]


def test_a_cursor_of_one_ordering_is_refused_by_the_other(api_client) -> None:
    posts_at(*["A harbor."] * 3)
    for ordering, other in (("relevance", "newest"), ("newest", "relevance")):
        cursor = api_client.get(URL, {"search": "harbor", "ordering": ordering, "page_size": 1}).json()["next"]
        token = cursor_of(cursor)
        response = api_client.get(URL, {"search": "harbor", "ordering": other, "cursor": token})
        assert response.status_code == 400
        assert response.json() == {"cursor": ["Invalid cursor."]}


def test_a_tampered_window_is_a_400(api_client) -> None:
    from project.http.pagination import encode_cursor  # noqa: PLC0415

    post = posts_at("A harbor.")[0]
    moment = post.created_at.isoformat()
    for plan in ("other", "1"):
        token = encode_cursor([0.1, post.pk], state=[moment, post.pk, moment, post.pk, plan])
        response = api_client.get(URL, {"search": "harbor", "cursor": token})
        assert response.status_code == 400
        assert response.json() == {"cursor": ["Invalid cursor."]}


# The first and last week of a WEEKS plan, in the statement that finds the weeks with posts.
WEEK_RANGE = re.compile(r"SELECT (\d+)::bigint\s+UNION ALL.*?FROM weeks WHERE week [<>] (\d+)", re.DOTALL)


def test_a_window_centuries_wide_reads_only_the_posts_weeks(api_client, corpus) -> None:
    """Edges far outside the posts' span (a hand-made cursor) cost what the real span costs."""
    from project.http.pagination import encode_cursor  # noqa: PLC0415

    post = Post.objects.latest("id")
    state = ["1900-01-01T00:00:00+00:00", 1, "9999-01-01T00:00:00+00:00", post.pk, search.WEEKS]
    for edges in (state, [state[2], post.pk, state[0], 1, search.WEEKS]):
        token = encode_cursor([1.0, post.pk], state=edges)
        with CaptureQueriesContext(connection) as queries:
            response = api_client.get(URL, {"search": "beacon harbor", "cursor": token})
        assert response.status_code == 200
        ranges = [WEEK_RANGE.search(query["sql"]) for query in queries.captured_queries]
        spans = [abs(int(found.group(1)) - int(found.group(2))) for found in ranges if found]
        assert spans
        assert max(spans) <= 1  # the corpus spans a week or two


@pytest.mark.parametrize(
    ("query", "field"),
    [({"ordering": "relevance"}, "ordering"), ({"search": "x", "ordering": "best"}, "ordering")],
)
def test_an_ordering_that_does_not_apply_is_a_400(api_client, query, field) -> None:
    response = api_client.get(URL, query)
    assert response.status_code == 400
    assert field in response.json()


def test_newest_without_a_search_is_the_feed(api_client) -> None:
    posts = posts_at("One.", "Two.")
    assert ids(api_client.get(URL, {"ordering": "newest"})) == [posts[1].pk, posts[0].pk]


# --- queries and plans -------------------------------------------------------------------------


def search_statements(queries: CaptureQueriesContext) -> list[tuple[str, str]]:
    """Each search statement a request ran, split into its plan's settings and the search."""
    return [
        tuple(query["sql"].split(";\n", 1))  # type: ignore[misc]
        for query in queries.captured_queries
        if "set_config" in query["sql"]
    ]


def plans_run(queries: CaptureQueriesContext) -> list[str]:
    """The plans a request ran, in order (a WEEKS plan's batches once), from each search
    statement and the settings set before it."""
    plans: list[str] = []
    for settings_sql, statement in search_statements(queries):
        if "posts_search_keys" in statement:
            plan = search.WEEKS
        else:
            plan = search.SCAN if "enable_bitmapscan" in settings_sql else search.INDEX
        if not plans or plans[-1] != plan or plan != search.WEEKS:
            plans.append(plan)
    return plans


PLAN_SETTINGS = ("enable_seqscan", "enable_indexscan", "enable_bitmapscan", "work_mem", "statement_timeout")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ordering", search.ORDERINGS)
def test_a_search_leaves_no_plan_setting_on_its_connection(api_client, settings, ordering) -> None:
    """The settings end with the search's statement (one implicit transaction): a persistent or
    pooled connection serves the next request with PostgreSQL's own planner."""
    settings.SEARCH_PLAN_TIMEOUT_MS = 5_000
    posts_at(*[f"Harbor {index}." for index in range(30)], "A lighthouse.")
    analyze()  # harbor is common (scanned), lighthouse rare (the index plan, time-limited)

    def current() -> tuple[str, ...]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join("current_setting(%s)" for _ in PLAN_SETTINGS), PLAN_SETTINGS)
            return tuple(cursor.fetchone())

    before = current()
    for text in ("harbor", "lighthouse"):
        assert api_client.get(URL, {"search": text, "ordering": ordering}).status_code == 200
        assert current() == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ordering", search.ORDERINGS)
def test_a_search_page_costs_one_query(api_client, django_assert_num_queries, ordering) -> None:
    """Outside a transaction, as in production: the plan's settings and the search, with the
    page's posts, in one statement. The statistics and the query tree are read once per
    process; inside a transaction (other tests) the search also takes a savepoint."""
    posts_at(*[f"Harbor {index}." for index in range(30)])
    search.statistics.get("default")  # read once per process every SEARCH_STATISTICS_TTL seconds
    search.query_tree("harbor")  # once per process and text
    with django_assert_num_queries(1):
        assert len(ids(api_client.get(URL, {"search": "harbor", "ordering": ordering}))) == 20


def test_a_word_the_statistics_call_common_is_scanned_and_an_unknown_one_goes_to_the_index(api_client) -> None:
    posts_at(*["A harbor."] * 30)
    analyze()
    posts_at("A lighthouse.")  # after ANALYZE: unknown to the statistics
    with CaptureQueriesContext(connection) as queries:
        api_client.get(URL, {"search": "harbor"})
    assert plans_run(queries) == [search.SCAN]
    with CaptureQueriesContext(connection) as queries:
        assert len(ids(api_client.get(URL, {"search": "lighthouse"}))) == 1
    assert plans_run(queries) == [search.INDEX]


def test_a_scan_that_finds_less_than_a_page_gives_way_to_the_index(api_client, settings) -> None:
    settings.SEARCH_SCAN_POSTS = 12  # two pages of the statistics' estimate: the scan goes first
    matches = posts_at(*["A harbor and a lake."] * 30)
    analyze()
    posts_at(*["A lake."] * 10)  # the newest posts: the scan finds none
    with CaptureQueriesContext(connection) as queries:
        found = ids(api_client.get(URL, {"search": "harbor", "ordering": "newest", "page_size": 4}))
    assert plans_run(queries) == [search.SCAN, search.WEEKS]  # "harbor" is known: week by week
    assert found == [p.pk for p in reversed(matches[-4:])]


def test_an_index_plan_over_its_time_limit_gives_way_to_the_scan(api_client, settings) -> None:
    """A word the statistics do not know, in 20,000 posts: the GIN plan cannot list them in 1 ms."""
    settings.SEARCH_PLAN_TIMEOUT_MS = 1
    author = UserFactory.create()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO posts (author_id, title, body, created_at, updated_at) "
            "SELECT %s, 'Harbor notes', 'Harbor ' || n, now() - n * interval '1 second', now() "
            "FROM generate_series(1, 20000) AS n",
            [author.pk],
        )
    search.statistics.clear()
    with CaptureQueriesContext(connection) as queries:
        found = ids(api_client.get(URL, {"search": "harbor", "ordering": "newest"}))
    assert plans_run(queries) == [search.INDEX, search.SCAN]
    assert len(found) == 20


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        ("'harbor'", 0.5),
        ("'harbor' & 'lake'", 0.1),
        ("'harbor' <-> 'lake'", 0.1 * search.PHRASE_SHARE),
        ("'harbor' <2> 'lake'", 0.1 * search.PHRASE_SHARE),
        ("'harbor' | 'lake'", 0.6),
        ("'harbor' & !'lake'", 0.4),
        ("( 'harbor' | 'lake' ) & 'harbor'", 0.3),
        ("'unknown'", 0.0),
        ("'harbor' & 'unknown'", 0.0),
        ("'it''s'", 0.25),
        ("", 0.0),
    ],
)
def test_the_share_estimate_combines_the_words_of_the_query(tree, expected) -> None:
    shares = {"harbor": 0.5, "lake": 0.2, "it's": 0.25}
    assert search.estimate_share(tree, shares) == pytest.approx(expected)


# --- EXPLAIN: each query shape keeps the plan it was written for ------------------------------


@pytest.fixture
def corpus(settings) -> None:
    """Enough posts for plans to differ: statistics that know "harbor" (in every post but a few)
    and "beacon" (in 9 %), seldom together; "lighthouse" written after ANALYZE (unknown); and
    scans short enough (100 posts) that only "harbor" fills a page within one."""
    settings.SEARCH_SCAN_POSTS = 100
    posts_at(*[f"A beacon {index}." for index in range(300)], *["A beacon over the harbor."] * 2)
    crowd = UserFactory.create_batch(20)
    Post.objects.bulk_create(
        Post(author=crowd[index % 20], title="Harbor notes", body=f"Harbor and lake {index}.") for index in range(3000)
    )
    analyze()
    posts_at("A lighthouse.", "Another lighthouse.")


def explained(client, query: Mapping[str, object]) -> list[str]:
    """EXPLAIN of each search statement a request ran, under the settings it ran with."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(URL, query)
    assert response.status_code == 200
    found = []
    for settings_sql, statement in search_statements(queries):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(settings_sql.replace("'statement_timeout'", "'application_name'"))
            cursor.execute("EXPLAIN " + statement)
            found.append("\n".join(row[0] for row in cursor.fetchall()))
            transaction.set_rollback(True)
    return found


SCAN_PLAN = re.compile(r"Index Scan using posts_created_idx on posts.*\n.*Index Cond: \(created_at >=", re.MULTILINE)
AUTHOR_SCAN_PLAN = re.compile(r"Index Scan using posts_author_created_idx on posts", re.MULTILINE)
INDEX_PLAN = re.compile(r"Bitmap Index Scan on posts_search_document_gin")
WEEKS_PLAN = re.compile(r"Bitmap Index Scan on posts_search_weeks_gin")
WEEK_BY_WEEK_SORT = re.compile(
    r"Incremental Sort.*\n.*Sort Key: week\.week (DESC|ASC).*\n.*Presorted Key: week\.week", re.MULTILINE
)
SCAN_PAGE_PLAN = re.compile(r"Index Scan using posts_created_idx on posts")


def test_newest_of_a_common_word_walks_the_created_at_index_and_stops(api_client, corpus) -> None:
    (plan,) = explained(api_client, {"search": "harbor", "ordering": "newest"})
    assert SCAN_PLAN.search(plan), plan
    assert "posts_search_document_gin" not in plan
    assert "Index Scan Backward using posts_pkey" in plan  # the scan's end, SEARCH_SCAN_POSTS ids back


def test_relevance_of_a_common_word_ranks_what_the_scan_found(api_client, corpus) -> None:
    (plan,) = explained(api_client, {"search": "harbor"})
    assert "CTE candidates" in plan
    assert SCAN_PLAN.search(plan), plan
    assert "posts_search_document_gin" not in plan


def test_a_rare_word_is_found_through_the_gin_index_in_both_orderings(api_client, corpus) -> None:
    for ordering in search.ORDERINGS:
        (plan,) = explained(api_client, {"search": "lighthouse", "ordering": ordering})
        assert INDEX_PLAN.search(plan), plan
        assert "posts_created_idx" not in plan  # the cursor's seek stays out of the bitmap


def test_common_words_seldom_together_are_found_week_by_week(api_client, corpus) -> None:
    for ordering in search.ORDERINGS:
        plans = explained(api_client, {"search": "beacon harbor", "ordering": ordering})
        for plan in plans:
            assert WEEKS_PLAN.search(plan), plan
            assert "posts_search_document_gin" not in plan
            assert "posts_created_idx" not in plan


def test_a_weekly_plan_sorts_week_by_week_and_stops_at_its_limit(api_client, corpus) -> None:
    """Over many weeks PostgreSQL sorts the matches a week at a time (the weeks come newest
    first) and stops reading weeks once the page or window is full."""
    with connection.cursor() as cursor:  # the corpus spread over ~40 weeks, in id order
        cursor.execute("UPDATE posts SET created_at = now() - ((SELECT max(id) FROM posts) - id) * interval '2 hours'")
    for ordering in search.ORDERINGS:
        for plan in explained(api_client, {"search": "beacon harbor", "ordering": ordering}):
            assert WEEK_BY_WEEK_SORT.search(plan), plan


def test_cursor_pages_keep_to_their_plans_and_out_of_the_btree(api_client, corpus) -> None:
    """A relevance page ranks its window with the plan that found it (the cursor says which); a
    newest page chooses again, from the cursor on."""
    expected = {"harbor": SCAN_PAGE_PLAN, "lighthouse": INDEX_PLAN, "beacon harbor": WEEKS_PLAN}
    for text, shape in expected.items():
        for ordering in search.ORDERINGS:
            first = api_client.get(URL, {"search": text, "ordering": ordering, "page_size": 1}).json()
            query = {"search": text, "ordering": ordering, "cursor": cursor_of(first["next"])}
            for plan in explained(api_client, query):
                assert shape.search(plan), (text, ordering, plan)
                assert "BitmapAnd" not in plan


def test_one_authors_common_word_walks_their_index(api_client, corpus) -> None:
    author = Post.objects.filter(title="Harbor notes").values_list("author_id", flat=True).first()
    for ordering in search.ORDERINGS:
        (plan,) = explained(api_client, {"search": "harbor", "author": author, "ordering": ordering})
        assert AUTHOR_SCAN_PLAN.search(plan), plan


def test_one_authors_search_reads_their_posts_and_stops_at_their_first(api_client, corpus) -> None:
    """An author with fewer posts than a scan reads: the scan is every match, found or not,
    with no index plan after it, whatever the statistics say of the words."""
    mine = posts_at("A beacon over the harbor.", "A lake.", "A harbor.")
    for text in ("harbor", "beacon harbor", "beacon lake"):
        for ordering in search.ORDERINGS:
            with CaptureQueriesContext(connection) as queries:
                found = ids(api_client.get(URL, {"search": text, "author": mine[0].author_id, "ordering": ordering}))
            assert plans_run(queries) == [search.SCAN], (text, ordering)
            expected = {"harbor": [mine[2].pk, mine[0].pk], "beacon harbor": [mine[0].pk], "beacon lake": []}[text]
            assert sorted(found) == sorted(expected)


def test_one_authors_index_plans_keep_the_author_out_of_the_bitmap(api_client, corpus) -> None:
    """The author's posts are filtered from the GIN indexes' matches, not ANDed with them: a
    bitmap of an author's every post, for each week, took 12-24 s for one author of 10M posts."""
    author = Post.objects.filter(title="Harbor notes").values_list("author_id", flat=True).first()
    expected = {"beacon harbor": WEEKS_PLAN, "lighthouse": INDEX_PLAN}  # 150 posts: more than a scan reads
    for text, shape in expected.items():
        for ordering in search.ORDERINGS:
            plans = explained(api_client, {"search": text, "author": author, "ordering": ordering})
            assert any(shape.search(plan) for plan in plans), (text, ordering, plans)
            for plan in plans:
                assert "BitmapAnd" not in plan, plan


def weeks_read(settings_sql: str) -> list[int]:
    """The weeks a WEEKS statement reads: what its settings statement finds and hands over,
    through index descents (planned before the plan's settings apply, as in production)."""
    with transaction.atomic(), connection.cursor() as cursor:
        # ANALYZE: a plain EXPLAIN leaves out the subquery of the recursive term.
        cursor.execute(
            "EXPLAIN (ANALYZE, COSTS OFF) " + settings_sql.replace("'statement_timeout'", "'application_name'")
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT current_setting('postline.search_weeks')::bigint[]")
        (weeks,) = cursor.fetchone()
        transaction.set_rollback(True)
    assert re.search(r"Index Only Scan using posts_(author_)?created_idx", plan), plan
    assert "Bitmap Heap Scan" not in plan, plan
    assert "Seq Scan" not in plan, plan
    return weeks


@pytest.mark.parametrize("author", [False, True])
def test_a_weekly_plan_reads_only_the_weeks_that_hold_posts(api_client, corpus, author) -> None:
    """Thirty weeks without a post cost nothing: the weeks come from one index descent each
    (posts_author_created_idx for one author's search), not from the calendar."""
    writer = Post.objects.filter(title="Harbor notes").values_list("author", flat=True).first()
    kwargs = {"author": UserFactory._meta.model.objects.get(pk=writer)} if author else {}
    old = posts_at("A beacon over the harbor, long ago.", start=timezone.now() - timedelta(weeks=30), **kwargs)[0]
    query = {"search": "beacon harbor", "ordering": "newest", **({"author": writer} if author else {})}
    with CaptureQueriesContext(connection) as queries:
        found = ids(api_client.get(URL, query))
    assert old.pk in found
    weeks = [weeks_read(settings_sql) for settings_sql, statement in search_statements(queries) if "weeks" in statement]
    assert weeks
    widest = max(weeks, key=len)
    assert widest[0] - widest[-1] >= 29  # from this week back to the old post's
    assert len(widest) <= 3  # this week (the corpus may straddle two) and the old post's


@pytest.mark.parametrize(
    ("share", "fill", "plan"),
    [
        (0.25, None, search.SCAN),  # a page of a word in a quarter of the posts: ~80 posts walked
        (0.25, 200, search.SCAN),  # its window: ~800 posts, against a whole week's 16,000 candidates
        (0.016, None, search.SCAN),  # a page of 'database': ~1,300 posts walked
        (0.016, 200, search.WEEKS),  # its window: ~12,500 posts, against ~1,000 weekly candidates
        (0.0005, None, search.WEEKS),  # not a page expected within the scan at all
    ],
)
def test_the_first_plan_weighs_walking_posts_against_weekly_candidates(share, fill, plan) -> None:
    """10M posts over 156 weeks (the bench's seed): ~64,000 posts a week."""
    found = search.Search("word", "'word'", share, ("word",), 10_000_000.0, 10_000_000.0 / 156)
    assert found.first_plan(20, fill=fill) == plan


def test_a_weekly_cursor_on_a_search_without_known_words_reads_the_gin_index(api_client, corpus) -> None:
    """A relevance cursor made by a WEEKS search, sent with a word the statistics do not know:
    the weekly index cannot serve it (it would read every post of the window's weeks)."""
    first = api_client.get(URL, {"search": "beacon harbor", "page_size": 1}).json()
    query = {"search": "lighthouse", "cursor": cursor_of(first["next"])}
    for plan in explained(api_client, query):
        assert WEEKS_PLAN.search(plan) is None, plan
    assert api_client.get(URL, query).status_code == 200
