"""Indexes and constraints dropped for a big load and rebuilt afterwards from their catalog definitions."""

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from queue import Empty, SimpleQueue
from typing import Any, TextIO

import psycopg
from psycopg import sql

from posts.seeding.copying import in_parallel, note, worker_connection

# Dropping indexes pays off once a run adds this share of the rows already in a table:
# inserting into a btree row by row costs about three times its share of a bulk build.
REBUILD_SHARE = 0.25


def rebuild_pays(*, adding: int, existing: int) -> bool:
    return adding > 0 and adding >= existing * REBUILD_SHARE


class Step(IntEnum):
    """Re-creation steps, in order: each later step takes stronger locks on the tables."""

    INDEX = 0
    PRIMARY_KEY = 1
    FOREIGN_KEY = 2


@dataclass(frozen=True)
class Deferred:
    """DDL dropped for a big load and re-run afterwards from its catalog definition.

    Reading definitions from pg_indexes / pg_constraint (not from the models) re-creates
    exactly what the migrations built, options and all, so nothing drifts.
    """

    table: str
    name: str
    create: sql.SQL | sql.Composed
    drop: sql.Composed | None  # None: dropped with another item (a primary key's index)
    step: Step = Step.INDEX
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


def deferrable(cursor: psycopg.Cursor[Any], *, table: str) -> list[Deferred]:
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
        deferred.append(Deferred(table=table, name=name, create=sql.SQL(definition), drop=drop, gin=gin))
    cursor.execute(_PRIMARY_KEYS_SQL, {"table": table})
    for name, index_definition in cursor.fetchall():
        constraint = sql.Identifier(name)
        drop = sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table_name, constraint)
        attach = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {}").format(
            table_name, constraint, constraint
        )
        deferred += [
            Deferred(table=table, name=name, create=sql.SQL(index_definition), drop=drop),
            Deferred(table=table, name=f"{name} (constraint)", create=attach, drop=None, step=Step.PRIMARY_KEY),
        ]
    cursor.execute(_FOREIGN_KEYS_SQL, {"table": table})
    for name, definition in cursor.fetchall():
        constraint = sql.Identifier(name)
        deferred.append(
            Deferred(
                table=table,
                name=name,
                create=sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    table_name, constraint, sql.SQL(definition)
                ),
                drop=sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table_name, constraint),
                step=Step.FOREIGN_KEY,
            )
        )
    return deferred


def drop(raw: psycopg.Connection[Any], deferred: Sequence[Deferred], *, stream: TextIO | None) -> None:
    """Drop in one transaction, foreign keys before what they use, printing each re-creation first:
    a run killed before the rebuild (SIGKILL) is repaired by running the printed statements."""
    with raw.transaction(), raw.cursor() as cursor:
        for item in sorted(deferred, key=lambda item: -item.step):
            note(stream, f"deferred until after the load: {item.create.as_string(raw)}")
            if item.drop is not None:
                cursor.execute(item.drop)


def recreate(
    deferred: Sequence[Deferred], *, rows: dict[str, int], workers: int, stream: TextIO | None
) -> dict[str, float]:
    """Build the dropped indexes on `workers` connections, biggest table first, constraints last.

    Index builds share their tables (SHARE locks); attaching a primary key and validating a
    foreign key (one join instead of a trigger call per row) lock more, so they come last. Each
    step starts when the one before has finished: a primary key attaches an index that must be
    committed first (another connection still building it would make it "does not exist").
    """
    timings: dict[str, float] = {}
    failures: list[Exception] = []

    def build(queue: SimpleQueue[Deferred], stop: threading.Event) -> None:
        # One failed statement must not leave the others missing: carry on, raise at the end.
        with worker_connection() as raw, raw.cursor() as cursor:
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
                    note(stream, f"FAILED  {item.name}: {error}")
                    continue
                timings[f"create {item.name}"] = seconds = time.monotonic() - started
                note(stream, f"created {item.name} in {seconds:.1f}s")

    for step in sorted({item.step for item in deferred}):
        queue: SimpleQueue[Deferred] = SimpleQueue()
        items = sorted(
            (item for item in deferred if item.step == step), key=lambda item: (-rows[item.table], not item.gin)
        )
        for item in items:
            queue.put(item)
        in_parallel([partial(build, queue)] * min(workers, len(items)), workers=workers)
    if failures:
        raise failures[0]
    return timings
