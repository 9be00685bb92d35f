"""COPY text for users and posts, in blocks of rows that depend only on the seed and the ids.

The columns come from the models, so that a field added to User or Post is either written by
a builder here or stops the run before anything is dropped, naming the field.
"""

import random
import threading
from abc import ABC, abstractmethod
from array import array
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from itertools import repeat
from typing import Any, ClassVar

from django.apps import apps
from django.db import models
from django.db.models.fields import NOT_PROVIDED

from posts.seeding.text import POOL_BITS, POOL_SIZE, Pools

# Every seeded user logs in with this password; load tests rely on it.
SEED_PASSWORD = "postline-seed"  # noqa: S105  -- a documented credential for development data  # nosec B105
# A fixed salt keeps the one hash (and so the whole data set) the same for the same --seed.
PASSWORD_SALT = "postlineseed"  # noqa: S105  -- not a secret: seeded data must be reproducible  # nosec B105

# Rows drawn from one random generator. A generator per block, keyed by the seed and the
# block's first id, makes the data independent of --batch-size and of --workers.
BLOCK_ROWS = 1024

# A run's users and posts are spread over this window, which starts after every existing row.
EPOCH = datetime(2021, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 3 * 365 * 86_400
_DAY = 86_400

INACTIVE_SHARE = 0.02

# NULL in COPY's text format.
_NULL = "\\N"


class SeedError(ValueError):
    """Options, table contents or models that make a run impossible; the message says which."""


def _block_rng(*, seed: int, table: str, first_id: int) -> random.Random:
    return random.Random(f"{seed}:{table}:{first_id}")  # noqa: S311  -- test data, not secrets


# --- Time ------------------------------------------------------------------------------------


@cache
def _clock_texts() -> tuple[str, ...]:
    """'HH:MM:SS+00' for each second of a day: formatting a datetime per row costs more than a COPY."""
    return tuple(
        f"{hour:02}:{minute:02}:{second:02}+00" for hour in range(24) for minute in range(60) for second in range(60)
    )


class Timeline:
    """Creation times of one run's rows: spread evenly over the window and non-decreasing with id."""

    def __init__(self, *, start: int, rows: int) -> None:
        self.start = start
        self.rows = max(rows, 1)
        self._first_day = start // _DAY
        self._days = [
            datetime.fromtimestamp(day * _DAY, tz=UTC).strftime("%Y-%m-%d ")
            for day in range(self._first_day, (start + SPAN_SECONDS) // _DAY + 1)
        ]

    def seconds(self, index: int) -> int:
        return self.start + index * SPAN_SECONDS // self.rows

    def texts(self, first: int, count: int) -> list[str]:
        days, clock, first_day = self._days, _clock_texts(), self._first_day
        start, rows = self.start, self.rows
        return [
            days[(moment := start + index * SPAN_SECONDS // rows) // _DAY - first_day] + clock[moment % _DAY]
            for index in range(first, first + count)
        ]


# --- Columns ---------------------------------------------------------------------------------


def _database_fills(model_field: "models.Field[Any, Any]") -> bool:
    return model_field.null or model_field.db_default is not NOT_PROVIDED or model_field.generated


def copy_columns(model: type[models.Model], *, filled: Collection[str]) -> tuple[str, ...]:
    """The model's columns a builder fills, in the model's order: the COPY column list.

    A column left out must be one the database fills: nullable (posts.search_document, which
    its trigger writes), with a database default, or generated. Python-side defaults do not
    apply to COPY, so a NOT NULL column without a database default that no builder fills, or a
    builder's column the model no longer has, stops the run before any index is dropped.
    """
    fields = model._meta.concrete_fields
    columns = [model_field.column for model_field in fields]
    if unknown := sorted(set(filled) - set(columns)):
        raise SeedError(
            f"the seeder writes {', '.join(unknown)} but {model.__name__} ({model._meta.db_table}) "
            "has no such column: update posts/seeding/rows.py"
        )
    if missing := [
        f"{model.__name__}.{model_field.name}"
        for model_field in fields
        if model_field.column not in filled and not _database_fills(model_field)
    ]:
        raise SeedError(
            f"{', '.join(missing)}: NOT NULL without a database default, and the seeder does not fill it: "
            "give it a value in posts/seeding/rows.py"
        )
    return tuple(column for column in columns if column in filled)


# --- Rows ------------------------------------------------------------------------------------


class Rows(ABC):
    """A table's COPY text, block by block; a subclass (a dataclass) says what each column holds."""

    model_label: ClassVar[str]
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        # The keys of a zero-row block name the columns a builder fills, without drawing a row.
        self.columns = copy_columns(self.model, filled=self.values(0, 0).keys())

    @property
    def model(self) -> type[models.Model]:
        # Looked up, not imported: `posts.seeding` (SEED_PASSWORD) imports without Django set up.
        return apps.get_model(self.model_label)

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @abstractmethod
    def values(self, offset: int, count: int) -> dict[str, Iterable[str]]:
        """Each column's values in COPY text format, for `count` rows from id first_id + offset."""

    def lines(self, offset: int, count: int) -> str:
        values = self.values(offset, count)
        rows = zip(*(values[column] for column in self.columns), strict=True)
        return "\n".join([*map("\t".join, rows), ""])


@dataclass
class UserRows(Rows):
    """Users user{id}@example.com, ~2% inactive, weighted plan/country metadata."""

    seed: int
    first_id: int
    timeline: Timeline
    pools: Pools
    password: str
    post_counts: Sequence[int]

    model_label = "users.User"

    def values(self, offset: int, count: int) -> dict[str, Iterable[str]]:
        first = self.first_id + offset
        rng = _block_rng(seed=self.seed, table="users", first_id=first)
        names = rng.choices(self.pools.names, k=count)
        metadata = rng.choices(self.pools.metadata, cum_weights=self.pools.metadata_cum_weights, k=count)
        draw = rng.random
        ids = range(first, first + count)
        return {
            "id": map(str, ids),
            "password": repeat(self.password, count),
            "last_login": repeat(_NULL, count),
            "is_superuser": repeat("f", count),
            "email": [f"user{user_id}@example.com" for user_id in ids],
            "name": names,
            "is_active": ["f" if draw() < INACTIVE_SHARE else "t" for _ in range(count)],
            "is_staff": repeat("f", count),
            "metadata": metadata,
            "created_at": self.timeline.texts(offset, count),
            "post_count": map(str, self.post_counts[offset : offset + count]),
        }


class Tally:
    """Posts per author of this run, counted as posts are generated: users.post_count is then
    written once, by the users COPY, instead of updating half a million rows afterwards."""

    def __init__(self, *, first_id: int, size: int) -> None:
        self.first_id = first_id
        self.counts = array("q", bytes(8 * size))
        self._lock = threading.Lock()

    def add(self, author_ids: list[int]) -> None:
        first, counts = self.first_id, self.counts
        with self._lock:
            for author_id in author_ids:
                counts[author_id - first] += 1


@dataclass
class PostRows(Rows):
    """Posts with authors drawn from a Zipf law over the author pool.

    The author of rank r (the r-th lowest id in the pool) writes a share of about 1/r: with
    rank = int((n + 1) ** u) for uniform u, P(rank = r) = log(1 + 1/r) / log(n + 1). Only
    authors created before a post can write it, so early posts go to the first users.
    """

    seed: int
    first_id: int
    timeline: Timeline
    pools: Pools
    authors: Sequence[int]
    author_timeline: Timeline | None
    tally: Tally | None

    model_label = "posts.Post"

    def eligible(self, offset: int) -> int:
        if self.author_timeline is None:
            return len(self.authors)
        elapsed = self.timeline.seconds(offset) - self.author_timeline.start
        return min(len(self.authors), elapsed * self.author_timeline.rows // SPAN_SECONDS + 1)

    def author_ids(self, offset: int, count: int) -> list[int]:
        """A generator of their own, so that counting authors ahead of the load is cheap."""
        draw = _block_rng(seed=self.seed, table="authors", first_id=self.first_id + offset).random
        authors, ranks = self.authors, self.eligible(offset) + 1
        return [authors[int(ranks ** draw()) - 1] for _ in range(count)]

    def values(self, offset: int, count: int) -> dict[str, Iterable[str]]:
        first = self.first_id + offset
        rng = _block_rng(seed=self.seed, table="posts", first_id=first)
        # One draw picks title, opening and ending, POOL_BITS bits each.
        picks = [rng.getrandbits(3 * POOL_BITS) for _ in range(count)]
        author_ids = self.author_ids(offset, count)
        if self.tally is not None:
            self.tally.add(author_ids)
        titles, openings, endings = self.pools.titles, self.pools.openings, self.pools.endings
        bits, mask = POOL_BITS, POOL_SIZE - 1
        created = self.timeline.texts(offset, count)
        return {
            "id": map(str, range(first, first + count)),
            "title": [titles[pick & mask] for pick in picks],
            "body": [openings[pick >> bits & mask] + endings[pick >> 2 * bits] for pick in picks],
            "created_at": created,
            "updated_at": created,
            "author_id": map(str, author_ids),
        }
