"""posts.seeding.rows: COPY text whose columns are the models' own, checked before a run starts."""

from collections.abc import Iterable, Iterator

import pytest
from django.db import models
from django.db.models.functions import Lower
from django.test.utils import isolate_apps

from posts.models import Post
from posts.seeding.rows import (
    BLOCK_ROWS,
    EPOCH,
    SPAN_SECONDS,
    PostRows,
    SeedError,
    Tally,
    Timeline,
    UserRows,
    copy_columns,
)
from posts.seeding.text import Pools, pools
from users.models import User

START = int(EPOCH.timestamp())


@pytest.fixture(scope="module")
def text() -> Pools:
    return pools(1)


def user_rows(text: Pools, *, seed: int = 1, users: int = 200, builder: type[UserRows] = UserRows) -> UserRows:
    return builder(
        seed=seed,
        first_id=1,
        timeline=Timeline(start=START, rows=users),
        pools=text,
        password="pbkdf2_sha256$hash",
        post_counts=range(users),
    )


def post_rows(
    text: Pools, *, seed: int = 1, users: int = 200, posts: int = 2000, tally: Tally | None = None
) -> PostRows:
    return PostRows(
        seed=seed,
        first_id=1,
        timeline=Timeline(start=START, rows=posts),
        pools=text,
        authors=range(1, users + 1),
        author_timeline=Timeline(start=START, rows=users),
        tally=tally,
    )


def parsed(rows: UserRows | PostRows, offset: int, count: int) -> list[dict[str, str]]:
    return [dict(zip(rows.columns, line.split("\t"), strict=True)) for line in rows.lines(offset, count).splitlines()]


def model_columns(model: type[models.Model]) -> list[str]:
    return [field.column for field in model._meta.concrete_fields]


def test_user_rows_fill_every_user_column(text: Pools) -> None:
    # email_verified is left to its database default (false), as a fresh sign-up has it.
    assert list(user_rows(text).columns) == [column for column in model_columns(User) if column != "email_verified"]


def test_post_rows_fill_every_post_column_but_the_one_its_trigger_writes(text: Pools) -> None:
    columns = post_rows(text).columns

    assert [*columns, "search_document"] == model_columns(Post)


def test_every_line_holds_one_value_per_column(text: Pools) -> None:
    for rows in (user_rows(text), post_rows(text)):
        text_lines = rows.lines(0, 5)

        assert text_lines.endswith("\n")
        assert [line.count("\t") for line in text_lines.splitlines()] == [len(rows.columns) - 1] * 5


def test_rows_are_unchanged_for_seed_1(text: Pools) -> None:
    # Seeded databases are compared by checksum across versions: the data must not drift.
    assert parsed(user_rows(text), 0, 2)[1] == {
        "id": "2",
        "password": "pbkdf2_sha256$hash",
        "last_login": "\\N",
        "is_superuser": "f",
        "email": "user2@example.com",
        "name": "Julia Schneider",
        "is_active": "t",
        "is_staff": "f",
        "metadata": '{"plan": "free", "country": "DE"}',
        "created_at": "2021-01-06 11:24:00+00",
        "post_count": "1",
    }
    assert parsed(post_rows(text), 0, 2) == [
        {
            "id": "1",
            "author_id": "1",
            "title": "Why you feel your house",
            "body": "Each week always knows a car for each beautiful people. "
            "A night happily draws their server on a large result.",
            "created_at": "2021-01-01 00:00:00+00",
            "updated_at": "2021-01-01 00:00:00+00",
        },
        {
            "id": "2",
            "author_id": "1",
            "title": "Why they start another rain",
            "body": "You watch each dinner never.",
            "created_at": "2021-01-01 13:08:24+00",
            "updated_at": "2021-01-01 13:08:24+00",
        },
    ]


def test_a_block_depends_on_the_seed_and_its_first_id(text: Pools) -> None:
    users = user_rows(text, users=2 * BLOCK_ROWS)

    assert users.lines(BLOCK_ROWS, 3) == user_rows(text, users=2 * BLOCK_ROWS).lines(BLOCK_ROWS, 3)
    assert users.lines(BLOCK_ROWS, 3) != user_rows(text, seed=2, users=2 * BLOCK_ROWS).lines(BLOCK_ROWS, 3)
    assert post_rows(text).lines(BLOCK_ROWS, 3) != post_rows(text, seed=2).lines(BLOCK_ROWS, 3)


def test_users_carry_their_id_in_the_email_and_their_post_count(text: Pools) -> None:
    rows = parsed(user_rows(text), 10, 3)

    assert [(row["id"], row["email"], row["post_count"]) for row in rows] == [
        ("11", "user11@example.com", "10"),
        ("12", "user12@example.com", "11"),
        ("13", "user13@example.com", "12"),
    ]
    assert {row["last_login"] for row in rows} == {"\\N"}


def test_post_authors_are_counted_as_posts_are_generated(text: Pools) -> None:
    tally = Tally(first_id=1, size=200)
    rows = post_rows(text, tally=tally)

    authors = [int(row["author_id"]) for row in parsed(rows, 0, 300)]

    assert sum(tally.counts) == 300
    assert all(tally.counts[author - 1] == authors.count(author) for author in set(authors))


def test_timeline_spreads_rows_over_the_window_in_id_order() -> None:
    timeline = Timeline(start=START, rows=1000)

    texts = timeline.texts(0, 1000)

    assert texts[0] == "2021-01-01 00:00:00+00"
    assert texts == sorted(texts)
    assert timeline.seconds(999) < START + SPAN_SECONDS


def test_a_model_column_the_builder_misses_stops_it_naming_the_field(text: Pools) -> None:
    class WithoutName(UserRows):
        def values(self, offset: int, count: int) -> dict[str, Iterable[str]]:
            values = super().values(offset, count)
            del values["name"]
            return values

    with pytest.raises(SeedError, match=r"^User\.name: NOT NULL without a database default, and the seeder does not"):
        user_rows(text, builder=WithoutName)


def test_a_column_the_model_lacks_stops_the_builder_naming_it(text: Pools) -> None:
    class WithNickname(UserRows):
        def values(self, offset: int, count: int) -> dict[str, Iterable[str]]:
            return super().values(offset, count) | {"nickname": ["nick"] * count}

    with pytest.raises(SeedError, match=r"^the seeder writes nickname but User \(users\) has no such column"):
        user_rows(text, builder=WithNickname)


@pytest.fixture
def account_model() -> Iterator[type[models.Model]]:
    """A model with one column of each kind a builder may leave out, or not."""
    with isolate_apps("posts"):

        class Account(models.Model):  # noqa: DJ008  -- never printed
            email = models.EmailField()
            bio = models.TextField(null=True)  # noqa: DJ001  -- a nullable column on purpose
            score = models.IntegerField(db_default=0)
            plan = models.CharField(max_length=10, default="free")  # a Python default: COPY never sees it
            email_lower = models.GeneratedField(
                expression=Lower("email"), output_field=models.EmailField(), db_persist=True
            )

            class Meta:
                app_label = "posts"

        yield Account


def test_the_database_fills_null_default_and_generated_columns(account_model: type[models.Model]) -> None:
    assert copy_columns(account_model, filled={"id", "email", "plan"}) == ("id", "email", "plan")


def test_a_python_default_does_not_count_as_filled(account_model: type[models.Model]) -> None:
    with pytest.raises(SeedError, match=r"^Account\.plan: NOT NULL without a database default"):
        copy_columns(account_model, filled={"id", "email"})


def test_every_unfilled_column_is_named(account_model: type[models.Model]) -> None:
    with pytest.raises(SeedError, match=r"^Account\.id, Account\.email, Account\.plan: "):
        copy_columns(account_model, filled=set())
