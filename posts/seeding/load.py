"""`dataset_seed`: the order of a run, from reading the tables to the report.

Prepare everything (and fail on bad options or models) before touching a table; once indexes
are dropped, re-create them whatever happens to the load.
"""

import resource
import threading
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TextIO

import psycopg
from django.contrib.auth.hashers import make_password
from django.db import connection
from psycopg import sql

from posts.seeding.copying import DEFAULT_BATCH_ROWS, Progress, copy_rows, in_parallel, worker_connection
from posts.seeding.indexes import Step, deferrable, drop, rebuild_pays, recreate
from posts.seeding.rows import (
    BLOCK_ROWS,
    EPOCH,
    PASSWORD_SALT,
    SEED_PASSWORD,
    PostRows,
    Rows,
    SeedError,
    Tally,
    Timeline,
    UserRows,
)
from posts.seeding.text import pools


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
        with worker_connection() as raw, raw.cursor() as cursor:
            cursor.execute(
                sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'), max(id)) FROM {} HAVING max(id) > 0").format(
                    sql.Literal(table), name
                )
            )
            cursor.execute(_GIN_CLEAN_SQL, {"table": table})
            cursor.execute(sql.SQL("ANALYZE {}").format(name))

    in_parallel([partial(finish, table) for table in tables], workers=workers)


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
    the lowest ids are the heaviest authors (see rows.PostRows). The rows depend only on the
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
            *(deferrable(cursor, table="users") if rebuild_pays(adding=users, existing=user_max) else []),
            *(deferrable(cursor, table="posts") if rebuild_pays(adding=posts, existing=post_max) else []),
        ]
        authors = range(user_max + 1, user_max + users + 1) if users else _existing_user_ids(cursor)

    window = max(int(EPOCH.timestamp()), user_latest + 1, post_latest + 1)
    text = pools(seed)
    user_timeline = Timeline(start=window, rows=users)
    tally = Tally(first_id=user_max + 1, size=users)
    # Posts go first so that their authors are counted for users.post_count on the way.
    # With the foreign key in place (a small append) users must exist first: count ahead.
    posts_first = not users or any(item.step == Step.FOREIGN_KEY and item.table == "posts" for item in deferred)
    post_rows = PostRows(
        seed=seed,
        first_id=post_max + 1,
        timeline=Timeline(start=window, rows=posts),
        pools=text,
        authors=authors,
        author_timeline=user_timeline if users else None,
        tally=tally if users and posts_first else None,
    )
    if users and not posts_first:
        for offset in range(0, posts, BLOCK_ROWS):
            tally.add(post_rows.author_ids(offset, min(BLOCK_ROWS, posts - offset)))
    user_rows = UserRows(
        seed=seed,
        first_id=user_max + 1,
        timeline=user_timeline,
        pools=text,
        password=make_password(SEED_PASSWORD, PASSWORD_SALT),
        post_counts=tally.counts,
    )
    loads: list[tuple[Rows, int]] = [(post_rows, posts), (user_rows, users)]
    if not posts_first:
        loads.reverse()
    phases["prepare"] = time.monotonic() - started

    drop(raw, deferred, stream=progress)
    try:
        for rows, count in loads:
            if count:
                moment = time.monotonic()
                bar = Progress(stream=progress, label=rows.table, total=count)
                copy_rows(rows=rows, count=count, batch_rows=batch_size, workers=workers, progress=bar)
                phases[f"copy {rows.table}"] = time.monotonic() - moment
        if posts and not users:
            with raw.cursor() as cursor:
                cursor.execute(_COUNT_EXISTING_AUTHORS_SQL, {"first_post_id": post_max + 1})
    finally:
        moment = time.monotonic()
        totals = {"users": user_max + users, "posts": post_max + posts}
        phases |= recreate(deferred, rows=totals, workers=workers, stream=progress)
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
