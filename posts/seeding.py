"""Bulk-load realistic users and posts through PostgreSQL COPY (`manage.py seed`).

Load tests and EXPLAIN plans only mean something on production-sized tables, and a million
users with ten million posts must load in minutes, so nothing here is done per row that can
be done once: no ORM, one password hash for everyone, text picked from pre-built pools,
indexes and constraints dropped for a big load and rebuilt in bulk afterwards, COPY streams
on every core. Triggers stay on: posts' search_document trigger fires for every COPY row, so
to_tsvector runs in every stream's backend.
Measurements and the reasoning behind each step are in docs/seed.md.
"""

import json
import random
import resource
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, partial
from itertools import accumulate
from queue import Empty, SimpleQueue
from typing import Any, TextIO

import psycopg
from django.contrib.auth.hashers import make_password
from django.db import connection
from psycopg import sql

# Every seeded user logs in with this password; load tests rely on it.
SEED_PASSWORD = "postline-seed"  # noqa: S105  -- a documented credential for development data  # nosec B105
# A fixed salt keeps the one hash (and so the whole data set) the same for the same --seed.
_PASSWORD_SALT = "postlineseed"  # noqa: S105  -- not a secret: seeded data must be reproducible  # nosec B105

# Rows drawn from one random generator. A generator per block, keyed by the seed and the
# block's first id, makes the data independent of --batch-size and of --workers.
BLOCK_ROWS = 1024
DEFAULT_BATCH_ROWS = 50 * BLOCK_ROWS

# A run's users and posts are spread over this window, which starts after every existing row.
EPOCH = datetime(2021, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 3 * 365 * 86_400
_DAY = 86_400

INACTIVE_SHARE = 0.02

# Dropping indexes pays off once a run adds this share of the rows already in a table:
# inserting into a btree row by row costs about three times its share of a bulk build.
REBUILD_SHARE = 0.25

# Connection settings for the bulk work (session-level, the server's configuration is untouched).
SESSION_SETTINGS = (
    "SET synchronous_commit = off",
    "SET maintenance_work_mem = '256MB'",
    # Hash joins in memory: validating the foreign key joins every post to users.
    "SET work_mem = '256MB'",
    # The workers already keep every core busy; parallel index builds would only contend.
    "SET max_parallel_maintenance_workers = 0",
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# A few hundred common English words, so that full-text search finds real stems.
NOUNS = _words("""
    time year people way day man woman child world life hand part place case week company system
    program question work government number night point home water room mother area money story fact
    month lot study book eye job word business issue side kind head house service friend father power
    hour game line end member law car city community name team minute idea kid body information parent
    face level office door health person art history party result change morning reason research girl
    moment air teacher force education garden river mountain forest ocean island village market street
    bridge road train station airport kitchen bread coffee tea music song movie picture camera phone
    computer screen letter paper pencil window table chair bed lamp clock winter summer spring autumn
    weather rain snow wind sun moon star sky cloud flower tree leaf bird dog cat horse fish library school
    student lesson class project plan budget report meeting customer product price design code server
    database network release feature bug test dinner lunch breakfast recipe journey trip holiday beach
    hotel museum painting poem novel chapter language voice dream memory problem answer solution choice
    habit goal skill hobby sport match ball bicycle boat ship engine machine tool energy light fire stone
    glass wood metal gold silver color shape sound silence neighbor family brother sister baby doctor
    nurse artist writer farmer driver pilot chef manager engineer scientist
""")
ADJECTIVES = _words("""
    good new first last long great little own other old big high different small large next early young
    important public bad same free simple quiet bright dark warm cold hot cool fresh clean busy happy sad
    strange famous modern ancient local global quick slow gentle strong weak heavy soft hard deep wide
    narrow tall short green blue red yellow golden wooden empty full rich poor careful curious honest
    brave calm clever friendly lucky perfect rare real secret serious sharp smooth sudden sweet tiny huge
    useful wild wonderful beautiful difficult easy open private final favorite hidden broken shiny rainy
    sunny
""")
VERBS = _words("""
    build find make take see know want use tell ask need feel try leave call keep start show hear play
    run move like live believe hold bring write read lose pay meet include continue learn change lead
    understand watch follow stop create speak spend grow open win offer remember love consider buy wait
    serve send expect reach suggest raise pass sell decide explain develop carry break receive support
    produce eat cover catch draw choose cook paint visit fix test share clean plant teach explore design
    measure improve discover celebrate review plan travel repair collect describe
""")
ADVERBS = _words("""
    always often never sometimes rarely quickly slowly carefully quietly suddenly finally really almost
    already still usually simply gently easily happily proudly nearly soon today again together clearly
    honestly barely eagerly boldly calmly warmly briefly openly gladly loudly softly kindly
""")
PREPOSITIONS = _words("""
    in on at near under over behind beside across through around with without after before between
    inside outside beyond along during for from into toward
""")
DETERMINERS = _words("the a this that every our my their your one another each")
SUBJECTS = _words("I we you they")
FIRST_NAMES = _words("""
    Ada Alan Alice Amir Anna Ben Carla Chen Clara Daniel David Elena Emma Eva Felix Grace Hana Hugo Ines
    Ivan Jack James Julia Kai Karin Lars Laura Leo Lina Lucas Maya Mia Mohammed Nina Noah Olga Omar Paul
    Priya Rosa Sam Sara Sofia Tom Uma Victor Wei Yara Yusuf Zoe
""")
LAST_NAMES = _words("""
    Anderson Bauer Becker Brown Costa Davis Dubois Fischer Garcia Gonzalez Hansen Ito Jensen Johnson Kim
    Kowalski Kumar Lee Lopez Martin Meyer Miller Moreau Muller Nakamura Nguyen Novak Olsen Patel Rossi
    Santos Schmidt Schneider Silva Smith Suzuki Tanaka Taylor Wagner Wang Weber Williams Wilson Wright
    Zhang
""")
PLANS = {"free": 80, "pro": 15, "team": 4, "enterprise": 1}
COUNTRIES = {"US": 30, "DE": 10, "GB": 9, "IN": 8, "FR": 7, "BR": 6, "JP": 5, "CA": 5, "ES": 4, "IT": 4}


class SeedError(ValueError):
    """Options or table contents that make a run impossible; the message says which."""


@dataclass(frozen=True)
class SeedReport:
    """What a run loaded and what it cost; the command prints it and docs/seed.md quotes it."""

    users: int
    posts: int
    seconds: float
    peak_rss_mib: float
    phases: dict[str, float]

    @property
    def rows_per_second(self) -> float:
        return (self.users + self.posts) / self.seconds if self.seconds else 0.0


# --- Text ------------------------------------------------------------------------------------


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _noun_phrase(rng: random.Random, *, adjective: bool = False) -> str:
    words = [rng.choice(ADJECTIVES), rng.choice(NOUNS)] if adjective else [rng.choice(NOUNS)]
    determiner = rng.choice(DETERMINERS)
    return " ".join([_article(words[0]) if determiner == "a" else determiner, *words])


def _sentence(rng: random.Random) -> str:
    """A short sentence with grammatical shape, so posts read (and stem) like English."""
    subject, verb, adverb = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(ADVERBS)
    shape = rng.randrange(6)
    if shape == 0:
        text = f"{_noun_phrase(rng, adjective=True)} {_third_person(verb)} {_noun_phrase(rng)}."
    elif shape == 1:
        place = f"{rng.choice(PREPOSITIONS)} {_noun_phrase(rng)}"
        text = f"{subject} {verb} {_noun_phrase(rng, adjective=True)} {place}."
    elif shape == 2:
        place = f"{rng.choice(PREPOSITIONS)} {_noun_phrase(rng, adjective=True)}"
        text = f"{_noun_phrase(rng)} {adverb} {_third_person(verb)} {_noun_phrase(rng)} {place}."
    elif shape == 3:
        text = f"{subject} {adverb} {verb} {_noun_phrase(rng)} and {_noun_phrase(rng)}."
    elif shape == 4:
        text = f"why does {_noun_phrase(rng)} {verb} {_noun_phrase(rng, adjective=True)}?"
    else:
        text = f"{subject} {verb} {_noun_phrase(rng)} {adverb}."
    return text[0].upper() + text[1:]


def _title(rng: random.Random) -> str:
    noun, other, verb = rng.choice(NOUNS), rng.choice(NOUNS), rng.choice(VERBS)
    shape = rng.randrange(5)
    if shape == 0:
        text = f"{rng.choice(ADJECTIVES)} {noun} {rng.choice(PREPOSITIONS)} the {other}"
    elif shape == 1:
        text = f"how to {verb} {_noun_phrase(rng, adjective=True)}"
    elif shape == 2:
        text = f"{noun} and {other}"
    elif shape == 3:
        text = f"why {rng.choice(SUBJECTS)} {verb} {_noun_phrase(rng)}"
    else:
        text = f"notes on {_noun_phrase(rng, adjective=True)}"
    return text[0].upper() + text[1:]


@dataclass(frozen=True)
class _Pools:
    """Pre-built titles, sentences, names and metadata: choosing one per row is cheap, composing is not."""

    titles: list[str]
    openings: list[str]
    endings: list[str]
    names: list[str]
    metadata: list[str]
    metadata_cum_weights: list[int]


def _pools(seed: int) -> _Pools:
    rng = random.Random(f"{seed}:pools")  # noqa: S311  -- test data, not secrets
    # A body is one sentence plus none (75%), one (20%) or two (5%) more: microblog length.
    # Every word costs ~1.5 us of to_tsvector per post at load time (docs/seed.md).
    endings = []
    for _ in range(4096):
        draw = rng.random()
        extra = 0 if draw < 0.75 else 1 if draw < 0.95 else 2
        endings.append("".join(" " + _sentence(rng) for _ in range(extra)))
    pairs = [(plan, country) for plan in PLANS for country in COUNTRIES]
    return _Pools(
        titles=[_title(rng) for _ in range(4096)],
        openings=[_sentence(rng) for _ in range(4096)],
        endings=endings,
        names=[f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES],
        metadata=[json.dumps({"plan": plan, "country": country}) for plan, country in pairs],
        metadata_cum_weights=list(accumulate(PLANS[plan] * COUNTRIES[country] for plan, country in pairs)),
    )


def _block_rng(*, seed: int, table: str, first_id: int) -> random.Random:
    return random.Random(f"{seed}:{table}:{first_id}")  # noqa: S311  -- test data, not secrets


# --- Time ------------------------------------------------------------------------------------


@cache
def _clock_texts() -> tuple[str, ...]:
    """'HH:MM:SS+00' for each second of a day: formatting a datetime per row costs more than a COPY."""
    return tuple(
        f"{hour:02}:{minute:02}:{second:02}+00" for hour in range(24) for minute in range(60) for second in range(60)
    )


class _Timeline:
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


# --- Rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _UserRows:
    """COPY text for users: user{id}@example.com, ~2% inactive, weighted plan/country metadata."""

    seed: int
    first_id: int
    timeline: _Timeline
    pools: _Pools
    password: str
    post_counts: Sequence[int]

    table = "users"
    columns = (
        "id",
        "password",
        "last_login",
        "is_superuser",
        "email",
        "name",
        "is_active",
        "is_staff",
        "metadata",
        "created_at",
        "post_count",
    )

    def lines(self, offset: int, count: int) -> str:
        first = self.first_id + offset
        rng = _block_rng(seed=self.seed, table=self.table, first_id=first)
        names = rng.choices(self.pools.names, k=count)
        metadata = rng.choices(self.pools.metadata, cum_weights=self.pools.metadata_cum_weights, k=count)
        draw = rng.random
        active = ["f" if draw() < INACTIVE_SHARE else "t" for _ in range(count)]
        password = self.password
        return "".join(
            f"{user_id}\t{password}\t\\N\tf\tuser{user_id}@example.com\t{name}\t{is_active}\tf\t{meta}\t{created}\t{posts}\n"
            for user_id, name, is_active, meta, created, posts in zip(
                range(first, first + count),
                names,
                active,
                metadata,
                self.timeline.texts(offset, count),
                self.post_counts[offset : offset + count],
                strict=True,
            )
        )


class _Tally:
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


@dataclass(frozen=True)
class _PostRows:
    """COPY text for posts, authors drawn from a Zipf law over the author pool.

    The author of rank r (the r-th lowest id in the pool) writes a share of about 1/r: with
    rank = int((n + 1) ** u) for uniform u, P(rank = r) = log(1 + 1/r) / log(n + 1). Only
    authors created before a post can write it, so early posts go to the first users.
    """

    seed: int
    first_id: int
    timeline: _Timeline
    pools: _Pools
    authors: Sequence[int]
    author_timeline: _Timeline | None
    tally: _Tally | None

    table = "posts"
    columns = ("id", "title", "body", "created_at", "updated_at", "author_id")

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

    def lines(self, offset: int, count: int) -> str:
        first = self.first_id + offset
        rng = _block_rng(seed=self.seed, table=self.table, first_id=first)
        # One 36-bit draw picks title, opening and ending (pools of 4096 = 2**12 entries each).
        picks = [rng.getrandbits(36) for _ in range(count)]
        author_ids = self.author_ids(offset, count)
        if self.tally is not None:
            self.tally.add(author_ids)
        titles, openings, endings = self.pools.titles, self.pools.openings, self.pools.endings
        return "".join(
            [
                f"{post_id}\t{titles[pick & 4095]}\t{openings[pick >> 12 & 4095]}{endings[pick >> 24]}"
                f"\t{created}\t{created}\t{author_id}\n"
                for post_id, pick, created, author_id in zip(
                    range(first, first + count), picks, self.timeline.texts(offset, count), author_ids, strict=True
                )
            ]
        )


# --- Progress --------------------------------------------------------------------------------


class _Progress:
    """A one-line progress bar on a text stream (no dependency), safe to advance from threads."""

    def __init__(self, *, stream: TextIO | None, label: str, total: int) -> None:
        self.stream, self.label, self.total = stream, label, total
        self.done = 0
        self.started = self.shown = time.monotonic()
        self._lock = threading.Lock()

    def advance(self, rows: int) -> None:
        with self._lock:
            self.done += rows
            now = time.monotonic()
            if now - self.shown >= 0.2 or self.done >= self.total:
                self.shown = now
                self._show(now)

    def close(self) -> None:
        if self.stream is not None:
            self._show(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def _show(self, now: float) -> None:
        if self.stream is None:
            return
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * 30)
        rate = self.done / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r{self.label:<6} [{bar:<30}] {share:6.1%} {self.done:>12,}/{self.total:,} rows {rate:>10,.0f}/s"
        )
        self.stream.flush()


def _note(stream: TextIO | None, message: str) -> None:
    if stream is not None:
        stream.write(message + "\n")
        stream.flush()


# --- Connections and parallel work -----------------------------------------------------------


@contextmanager
def _worker_connection() -> Iterator[psycopg.Connection[Any]]:
    """This thread's own Django connection (Django keeps one per thread), tuned, closed afterwards."""
    connection.ensure_connection()
    try:
        raw: psycopg.Connection[Any] = connection.connection
        with raw.cursor() as cursor:
            for statement in SESSION_SETTINGS:
                cursor.execute(statement)
        yield raw
    finally:
        connection.close()


class _Stopped(Exception):  # noqa: N818  -- a signal between threads, not an error to report
    """Raised inside a worker (aborting its COPY) when another worker failed."""


def _in_parallel(tasks: Sequence[Callable[[threading.Event], None]], *, workers: int) -> None:
    """Run tasks on `workers` threads; the first failure (or Ctrl-C) tells the others to stop."""
    stop = threading.Event()

    def guarded(task: Callable[[threading.Event], None]) -> None:
        try:
            task(stop)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(guarded, task) for task in tasks]
        try:
            wait(futures)
        except BaseException:  # Ctrl-C: the workers stop at their next batch, then we leave
            stop.set()
            raise
    errors = [error for future in futures if (error := future.exception()) is not None]
    if errors:
        raise next((error for error in errors if not isinstance(error, _Stopped)), errors[0])


def _copy_rows(*, rows: _UserRows | _PostRows, count: int, batch_rows: int, workers: int, progress: _Progress) -> None:
    """COPY `count` rows over `workers` connections, so several backends parse and insert at once.

    Each worker streams one COPY, written batch by batch: memory stays at a batch per worker
    whatever the row count. Batches go round-robin to workers so ids stay roughly in order on disk.
    """
    batch_rows = max(BLOCK_ROWS, batch_rows // BLOCK_ROWS * BLOCK_ROWS)
    batches = [(start, min(batch_rows, count - start)) for start in range(0, count, batch_rows)]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(rows.table), sql.SQL(", ").join(map(sql.Identifier, rows.columns))
    )

    def stream(share: list[tuple[int, int]], stop: threading.Event) -> None:
        with _worker_connection() as raw, raw.cursor() as cursor, cursor.copy(statement) as copy:
            for start, size in share:
                if stop.is_set():
                    raise _Stopped
                end = start + size
                copy.write(
                    "".join(rows.lines(block, min(BLOCK_ROWS, end - block)) for block in range(start, end, BLOCK_ROWS))
                )
                progress.advance(size)

    workers = max(1, min(workers, len(batches)))
    try:
        _in_parallel([partial(stream, batches[worker::workers]) for worker in range(workers)], workers=workers)
    finally:
        progress.close()


# --- Indexes and constraints -----------------------------------------------------------------


# Re-creation steps, in order: each later step takes stronger locks on the tables.
_INDEX, _PRIMARY_KEY, _FOREIGN_KEY = 0, 1, 2


@dataclass(frozen=True)
class _Deferred:
    """DDL dropped for a big load and re-run afterwards from its catalog definition.

    Reading definitions from pg_indexes / pg_constraint (not from the models) re-creates
    exactly what the migrations built, options and all, so nothing drifts.
    """

    table: str
    name: str
    create: sql.SQL | sql.Composed
    drop: sql.Composed | None  # None: dropped with another item (a primary key's index)
    step: int = _INDEX
    gin: bool = False


# Indexes behind constraints are handled with their constraint (below), or stay.
_INDEXES_SQL = """
SELECT ix.indexname, ix.indexdef, am.amname = 'gin'
FROM pg_indexes ix
JOIN pg_class c ON c.oid = to_regclass(quote_ident(ix.schemaname) || '.' || quote_ident(ix.indexname))
JOIN pg_am am ON am.oid = c.relam
WHERE ix.schemaname = current_schema() AND ix.tablename = %(table)s
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)
ORDER BY ix.indexname
"""
# A primary key that a foreign key references (users_pkey) must stay.
_PRIMARY_KEYS_SQL = """
SELECT k.conname, pg_get_indexdef(k.conindid) FROM pg_constraint k
WHERE k.conrelid = to_regclass(%(table)s) AND k.contype = 'p'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = k.conindid)
"""
_FOREIGN_KEYS_SQL = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = to_regclass(%(table)s) AND contype = 'f'
ORDER BY conname
"""


def _deferrable(cursor: psycopg.Cursor[Any], *, table: str) -> list[_Deferred]:
    """The table's secondary indexes, unreferenced primary key and foreign keys.

    Maintaining them row by row costs more than building them once, and several COPY
    streams appending to one primary key split its pages half-empty (a third bigger index).
    That holds for posts_search_document_gin too: the costly part of full text, to_tsvector,
    runs in posts' trigger during the COPY, on every stream, and building the GIN index from
    the stored documents afterwards (one core) costs less than maintaining it while loading.
    """
    table_name = sql.Identifier(table)
    deferred = []
    cursor.execute(_INDEXES_SQL, {"table": table})
    for name, definition, gin in cursor.fetchall():
        drop = sql.SQL("DROP INDEX {}").format(sql.Identifier(name))
        deferred.append(_Deferred(table=table, name=name, create=sql.SQL(definition), drop=drop, gin=gin))
    cursor.execute(_PRIMARY_KEYS_SQL, {"table": table})
    for name, index_definition in cursor.fetchall():
        constraint = sql.Identifier(name)
        drop = sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table_name, constraint)
        attach = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {}").format(
            table_name, constraint, constraint
        )
        deferred += [
            _Deferred(table=table, name=name, create=sql.SQL(index_definition), drop=drop),
            _Deferred(table=table, name=f"{name} (constraint)", create=attach, drop=None, step=_PRIMARY_KEY),
        ]
    cursor.execute(_FOREIGN_KEYS_SQL, {"table": table})
    for name, definition in cursor.fetchall():
        constraint = sql.Identifier(name)
        deferred.append(
            _Deferred(
                table=table,
                name=name,
                create=sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    table_name, constraint, sql.SQL(definition)
                ),
                drop=sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table_name, constraint),
                step=_FOREIGN_KEY,
            )
        )
    return deferred


def _recreate(
    deferred: list[_Deferred], *, rows: dict[str, int], workers: int, stream: TextIO | None
) -> dict[str, float]:
    """Build the dropped indexes on `workers` connections, biggest table first, constraints last.

    Index builds share their tables (SHARE locks); attaching a primary key and validating a
    foreign key (one join instead of a trigger call per row) lock more, so they come last.
    """
    queue: SimpleQueue[_Deferred] = SimpleQueue()
    for item in sorted(deferred, key=lambda item: (item.step, -rows[item.table], not item.gin)):
        queue.put(item)
    timings: dict[str, float] = {}
    failures: list[Exception] = []

    def build(stop: threading.Event) -> None:
        # One failed statement must not leave the others missing: carry on, raise at the end.
        with _worker_connection() as raw, raw.cursor() as cursor:
            while not stop.is_set():
                try:
                    item = queue.get_nowait()
                except Empty:
                    return
                started = time.monotonic()
                try:
                    cursor.execute(item.create)
                except psycopg.Error as error:
                    failures.append(error)
                    _note(stream, f"FAILED  {item.name}: {error}")
                    continue
                timings[f"create {item.name}"] = seconds = time.monotonic() - started
                _note(stream, f"created {item.name} in {seconds:.1f}s")

    _in_parallel([build] * min(workers, len(deferred)), workers=workers)
    if failures:
        raise failures[0]
    return timings


_GIN_CLEAN_SQL = """
SELECT gin_clean_pending_list(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
WHERE i.indrelid = to_regclass(%(table)s) AND a.amname = 'gin'
"""


def _finish(*, tables: Sequence[str], workers: int) -> None:
    """Per table: sequences past the seeded ids, GIN pending lists merged, fresh statistics.

    Without setval the API's next INSERT collides with a seeded id. GIN indexes maintained
    during the load (an append too small to rebuild them) hold their last rows in a pending
    list that every search scans linearly until (auto)vacuum merges it. ANALYZE gives the
    planner real statistics before the first benchmark query instead of whenever autovacuum
    gets to it.
    """

    def finish(table: str, _stop: threading.Event) -> None:
        name = sql.Identifier(table)
        with _worker_connection() as raw, raw.cursor() as cursor:
            cursor.execute(
                sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'), max(id)) FROM {} HAVING max(id) > 0").format(
                    sql.Literal(table), name
                )
            )
            cursor.execute(_GIN_CLEAN_SQL, {"table": table})
            cursor.execute(sql.SQL("ANALYZE {}").format(name))

    _in_parallel([partial(finish, table) for table in tables], workers=workers)


# --- The service -----------------------------------------------------------------------------


def _validate(*, users: int, posts: int, batch_size: int, workers: int) -> None:
    for option, value in (("--users", users), ("--posts", posts)):
        if value < 0:
            raise SeedError(f"{option} must be zero or more, got {value}")
    for option, value in (("--batch-size", batch_size), ("--workers", workers)):
        if value < 1:
            raise SeedError(f"{option} must be at least 1, got {value}")
    if connection.in_atomic_block:
        raise SeedError("seeding loads over several connections, so it cannot run inside a transaction")


def _table_state(cursor: psycopg.Cursor[Any], table: str) -> tuple[int, int]:
    """(max id, latest created_at in whole seconds since 1970), zeros for an empty table."""
    cursor.execute(
        sql.SQL(
            "SELECT coalesce(max(id), 0), coalesce(ceil(extract(epoch FROM max(created_at))), 0)::bigint FROM {}"
        ).format(sql.Identifier(table))
    )
    max_id, latest = cursor.fetchone() or (0, 0)
    return max_id, latest


def _existing_user_ids(cursor: psycopg.Cursor[Any]) -> Sequence[int]:
    """Authors for a posts-only run, as 8 bytes per user: a million users cost 8 MB."""
    cursor.execute("SELECT id FROM users ORDER BY id")
    return array("q", (user_id for (user_id,) in cursor))


# A posts-only run writes for existing users, whose post_count grows by what they got.
_COUNT_EXISTING_AUTHORS_SQL = """
UPDATE users SET post_count = users.post_count + added.n
FROM (SELECT author_id, count(*) AS n FROM posts WHERE id >= %(first_post_id)s GROUP BY author_id) AS added
WHERE users.id = added.author_id
"""


def _rebuild_pays(*, adding: int, existing: int) -> bool:
    return adding > 0 and adding >= existing * REBUILD_SHARE


def dataset_seed(
    *,
    users: int,
    posts: int,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_ROWS,
    workers: int = 2,
    if_empty: bool = False,
    progress: TextIO | None = None,
) -> SeedReport | None:
    """Append users and posts after the current max ids; None when if_empty and users has rows.

    Posts go to the users created by this run, or to the existing users when `users` is 0;
    the lowest ids are the heaviest authors (see _PostRows). The rows depend only on the
    seed and the ids, so the same command on the same tables loads the same data.
    """
    _validate(users=users, posts=posts, batch_size=batch_size, workers=workers)
    started = time.monotonic()
    phases: dict[str, float] = {}
    connection.ensure_connection()
    raw: psycopg.Connection[Any] = connection.connection
    with raw.cursor() as cursor:
        user_max, user_latest = _table_state(cursor, "users")
        if if_empty and user_max:
            return None
        if posts and not users and not user_max:
            raise SeedError("--posts needs authors: the users table is empty, so pass --users as well")
        post_max, post_latest = _table_state(cursor, "posts")
        deferred = [
            *(_deferrable(cursor, table="users") if _rebuild_pays(adding=users, existing=user_max) else []),
            *(_deferrable(cursor, table="posts") if _rebuild_pays(adding=posts, existing=post_max) else []),
        ]
        authors = range(user_max + 1, user_max + users + 1) if users else _existing_user_ids(cursor)

    window = max(int(EPOCH.timestamp()), user_latest + 1, post_latest + 1)
    pools = _pools(seed)
    user_timeline = _Timeline(start=window, rows=users)
    tally = _Tally(first_id=user_max + 1, size=users)
    # Posts go first so that their authors are counted for users.post_count on the way.
    # With the foreign key in place (a small append) users must exist first: count ahead.
    posts_first = not users or any(item.step == _FOREIGN_KEY and item.table == "posts" for item in deferred)
    post_rows = _PostRows(
        seed=seed,
        first_id=post_max + 1,
        timeline=_Timeline(start=window, rows=posts),
        pools=pools,
        authors=authors,
        author_timeline=user_timeline if users else None,
        tally=tally if users and posts_first else None,
    )
    if users and not posts_first:
        for offset in range(0, posts, BLOCK_ROWS):
            tally.add(post_rows.author_ids(offset, min(BLOCK_ROWS, posts - offset)))
    user_rows = _UserRows(
        seed=seed,
        first_id=user_max + 1,
        timeline=user_timeline,
        pools=pools,
        password=make_password(SEED_PASSWORD, _PASSWORD_SALT),
        post_counts=tally.counts,
    )
    loads: list[tuple[_UserRows | _PostRows, int]] = [(post_rows, posts), (user_rows, users)]
    if not posts_first:
        loads.reverse()
    phases["prepare"] = time.monotonic() - started

    with raw.transaction(), raw.cursor() as cursor:
        for item in sorted(deferred, key=lambda item: -item.step):  # foreign keys before what they use
            _note(progress, f"deferred until after the load: {item.create.as_string(raw)}")
            if item.drop is not None:
                cursor.execute(item.drop)
    try:
        for rows, count in loads:
            if count:
                moment = time.monotonic()
                bar = _Progress(stream=progress, label=rows.table, total=count)
                _copy_rows(rows=rows, count=count, batch_rows=batch_size, workers=workers, progress=bar)
                phases[f"copy {rows.table}"] = time.monotonic() - moment
        if posts and not users:
            with raw.cursor() as cursor:
                cursor.execute(_COUNT_EXISTING_AUTHORS_SQL, {"first_post_id": post_max + 1})
    finally:
        moment = time.monotonic()
        totals = {"users": user_max + users, "posts": post_max + posts}
        phases |= _recreate(deferred, rows=totals, workers=workers, stream=progress)
        phases["indexes and foreign keys (wall)"] = time.monotonic() - moment

    moment = time.monotonic()
    _finish(tables=[table for table, count in (("users", users + posts), ("posts", posts)) if count], workers=workers)
    phases["sequences, GIN pending lists, ANALYZE"] = time.monotonic() - moment
    return SeedReport(
        users=users,
        posts=posts,
        seconds=time.monotonic() - started,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        phases=phases,
    )
