"""posts.seeding.copying: the progress bar and the worker pool the COPY streams and index builds share."""

import io
import threading
from functools import partial

import pytest

from posts.seeding.copying import Progress, in_parallel


def test_progress_ends_on_a_full_bar_and_a_newline() -> None:
    stream = io.StringIO()
    progress = Progress(stream=stream, label="posts", total=2048)

    progress.advance(1024)
    progress.advance(1024)
    progress.close()

    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("posts  [" + "#" * 30 + "] 100.0%        2,048/2,048 rows ")
    assert last.endswith("/s\n")


def test_progress_without_a_stream_writes_nothing() -> None:
    progress = Progress(stream=None, label="users", total=10)

    progress.advance(10)
    progress.close()

    assert progress.done == 10


def test_the_first_failure_stops_the_other_workers_and_is_raised() -> None:
    stopped = threading.Event()

    def fail(_stop: threading.Event) -> None:
        raise LookupError("the first failure")

    def wait_for_stop(stop: threading.Event) -> None:
        if stop.wait(timeout=10):
            stopped.set()

    with pytest.raises(LookupError, match="the first failure"):
        in_parallel([wait_for_stop, fail], workers=2)
    assert stopped.is_set()


def test_every_task_runs_when_none_fails() -> None:
    done: list[int] = []

    def task(n: int, _stop: threading.Event) -> None:
        done.append(n)

    in_parallel([partial(task, n) for n in range(5)], workers=2)

    assert sorted(done) == [0, 1, 2, 3, 4]
