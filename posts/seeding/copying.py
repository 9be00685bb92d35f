"""COPY streams on several connections at once, so several backends parse and insert in parallel,
with a thread pool whose first failure stops the rest and a progress bar on stderr."""

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from functools import partial
from typing import Any, TextIO

import psycopg
from django.db import connection
from psycopg import sql

from posts.seeding.rows import BLOCK_ROWS, Rows

DEFAULT_BATCH_ROWS = 50 * BLOCK_ROWS

# Connection settings for the bulk work (session-level, the server's configuration is untouched).
SESSION_SETTINGS = (
    "SET synchronous_commit = off",
    "SET maintenance_work_mem = '256MB'",
    # Hash joins in memory: validating the foreign key joins every post to users.
    "SET work_mem = '256MB'",
    # The workers already keep every core busy; parallel index builds would only contend.
    "SET max_parallel_maintenance_workers = 0",
)


class Progress:
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


def note(stream: TextIO | None, message: str) -> None:
    if stream is not None:
        stream.write(message + "\n")
        stream.flush()


@contextmanager
def worker_connection() -> Iterator[psycopg.Connection[Any]]:
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


def in_parallel(tasks: Sequence[Callable[[threading.Event], None]], *, workers: int) -> None:
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


def copy_rows(*, rows: Rows, count: int, batch_rows: int, workers: int, progress: Progress) -> None:
    """COPY `count` rows over `workers` connections.

    Each worker streams one COPY, written batch by batch: memory stays at a batch per worker
    whatever the row count. Batches go round-robin to workers so ids stay roughly in order on disk.
    """
    batch_rows = max(BLOCK_ROWS, batch_rows // BLOCK_ROWS * BLOCK_ROWS)
    batches = [(start, min(batch_rows, count - start)) for start in range(0, count, batch_rows)]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(rows.table), sql.SQL(", ").join(map(sql.Identifier, rows.columns))
    )

    def stream(share: list[tuple[int, int]], stop: threading.Event) -> None:
        with worker_connection() as raw, raw.cursor() as cursor, cursor.copy(statement) as copy:
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
        in_parallel([partial(stream, batches[worker::workers]) for worker in range(workers)], workers=workers)
    finally:
        progress.close()
