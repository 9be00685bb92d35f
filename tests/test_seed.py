"""`manage.py seed`: realistic, deterministic, appendable data loaded through COPY.

The command loads over several connections (one per worker), so these tests commit for real
(`transaction=True`): rows inside a test transaction would be invisible to the workers.
"""

import statistics
from collections.abc import Callable

import pytest
from django.contrib.auth import authenticate
from django.contrib.postgres.search import SearchQuery
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Count

from posts.models import Post
from posts.seeding import SEED_PASSWORD
from posts.seeding.text import NOUNS
from tests.conftest import documents_are_right
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)

MIGRATED_INDEXES = {
    "users_pkey",
    "posts_pkey",
    "users_active_id_idx",
    "users_active_created_idx",
    "users_metadata_gin",
    "users_email_ci_unique",
    "posts_author_created_idx",
    "posts_created_idx",
    "posts_search_document_gin",
}


def seed(**options: object) -> None:
    call_command("seed", verbosity=0, **{"users": 200, "posts": 2000, "seed": 1, **options})


def scalar(query: str) -> object:
    with connection.cursor() as cursor:
        cursor.execute(query)
        row = cursor.fetchone()
    assert row is not None
    return row[0]


def checksum() -> tuple[object, object]:
    return (
        scalar("SELECT md5(string_agg(u::text, '|' ORDER BY id)) FROM users u"),
        scalar("SELECT md5(string_agg(p::text, '|' ORDER BY id)) FROM posts p"),
    )


def empty_tables() -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE users, posts RESTART IDENTITY CASCADE")


def test_loads_the_requested_counts() -> None:
    seed()

    assert User.objects.count() == 200
    assert Post.objects.count() == 2000
    assert scalar("SELECT count(DISTINCT lower(email)) FROM users") == 200
    assert User.objects.filter(email="user200@example.com").exists()


def test_about_two_percent_of_users_are_inactive() -> None:
    seed(users=5000, posts=0)

    inactive = User.objects.filter(is_active=False).count()
    assert 60 <= inactive <= 140  # 2% of 5000 is 100; the binomial spread is about 10


def test_metadata_holds_plan_and_country() -> None:
    seed()

    plans = set(User.objects.values_list("metadata__plan", flat=True))
    assert {"free", "pro"} <= plans
    assert User.objects.filter(metadata__contains={"country": "DE"}).exists()


def test_posts_per_author_are_heavy_tailed_with_user_1_heaviest() -> None:
    seed()

    counts = list(Post.objects.values("author_id").annotate(n=Count("id")).order_by("-n").values_list("author_id", "n"))
    assert counts[0][0] == 1
    assert counts[0][1] >= 10 * statistics.median(n for _, n in counts)


def test_created_at_grows_with_id_and_posts_follow_their_author() -> None:
    seed()

    for model in (User, Post):
        in_id_order = list(model.objects.order_by("id").values_list("created_at", flat=True))
        assert in_id_order == sorted(in_id_order)
    early = "SELECT count(*) FROM posts p JOIN users u ON u.id = p.author_id WHERE p.created_at < u.created_at"
    assert scalar(early) == 0


def test_same_seed_loads_the_same_data_whatever_the_batch_size_and_workers() -> None:
    seed()
    first = checksum()
    empty_tables()
    seed(batch_size=1, workers=1)

    assert checksum() == first


def test_another_seed_loads_other_data() -> None:
    seed()
    first = checksum()
    empty_tables()
    seed(seed=2)

    assert checksum() != first


def test_second_run_appends_after_the_existing_rows() -> None:
    seed()
    newest = User.objects.order_by("-id").values_list("created_at", flat=True)[0]
    seed()

    assert User.objects.count() == 400
    assert Post.objects.count() == 4000
    assert scalar("SELECT max(id) FROM users") == 400
    assert User.objects.filter(id__gt=200, created_at__lte=newest).count() == 0


def test_posts_only_run_writes_for_existing_users() -> None:
    seed()
    seed(users=0, posts=500)

    assert Post.objects.count() == 2500
    assert User.objects.count() == 200


def test_post_count_matches_the_posts_after_fresh_appended_and_posts_only_runs() -> None:
    seed()
    seed(users=0, posts=500)  # existing authors: their counts grow
    seed(users=10, posts=10)  # a small append keeps the foreign key: authors are counted ahead

    wrong = "SELECT count(*) FROM users u WHERE post_count <> (SELECT count(*) FROM posts p WHERE p.author_id = u.id)"
    assert scalar(wrong) == 0
    assert User.objects.filter(post_count__gt=0).count() > 100


def test_sequences_move_past_the_seeded_ids() -> None:
    seed()

    user = User.objects.create_user("fresh@example.com", password="irrelevant-pass", name="Fresh")
    post = Post.objects.create(author=user, title="After seeding", body="The sequence moved on.")
    assert user.pk == 201
    assert post.pk == 2001


def test_if_empty_does_nothing_when_users_exist() -> None:
    seed()
    seed(if_empty=True, users=50, posts=50)

    assert User.objects.count() == 200


def test_if_empty_seeds_an_empty_database() -> None:
    seed(if_empty=True)

    assert User.objects.count() == 200


def seed_then_append_a_little() -> None:
    seed()
    seed(users=10, posts=10)  # too few rows to drop anything: indexes are maintained row by row


@pytest.mark.parametrize("load", [seed, seed_then_append_a_little])
def test_indexes_and_foreign_key_are_back_and_valid(load: Callable[[], None]) -> None:
    load()

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid, i.indisready FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid IN ('users'::regclass, 'posts'::regclass)"
        )
        indexes = {name: valid and ready for name, valid, ready in cursor.fetchall()}
        cursor.execute(
            "SELECT contype, convalidated FROM pg_constraint WHERE conrelid = 'posts'::regclass ORDER BY contype"
        )
        constraints = cursor.fetchall()
    assert indexes.keys() >= MIGRATED_INDEXES
    assert all(indexes.values())
    assert constraints == [("f", True), ("p", True)]


def test_seeded_user_logs_in_with_the_documented_password() -> None:
    seed()

    assert authenticate(email="USER7@example.com", password=SEED_PASSWORD) == User.objects.get(pk=7)


def test_full_text_search_finds_words_from_the_word_list() -> None:
    seed()

    found = Post.objects.filter(search_document=SearchQuery(NOUNS[0], config="english"))
    assert found.count() > 0
    # COPY fired the trigger for every row.
    assert documents_are_right()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"users": -1}, "--users must be zero or more"),
        ({"posts": -5}, "--posts must be zero or more"),
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"users": 0, "posts": 10}, "the users table is empty"),
    ],
)
def test_invalid_options_fail_clearly(options: dict[str, int], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        seed(**options)
    assert not User.objects.exists()
