"""Workers that take new connections in turn: the one holding the fewest listens, the others wait.

All workers share the master's listening socket, which outlives any worker (a socket of each
worker's own, SO_REUSEPORT, dies with it and resets the connections queued on it:
docs/performance.md). Every worker watching that socket is woken for a new connection, and the
one already on a CPU wins the accept. Under a burst of keep-alive connections (a load
balancer's pool, wrk) one worker often takes all of them and keeps them while the other idles:
measured, one worker at 100 % CPU and the other at 0 %, half the throughput; gthread and uvicorn
workers alike. Nothing a worker sees on its own socket can tell it that another worker is idle.

So the workers tell each other: each publishes how many connections it holds in a small table
shared by all of them (anonymous shared memory, created in the master and inherited at fork),
and a worker listens only while it holds no more than the least loaded live one. Connections
then go round the workers in turn, wherever the kernel would have sent them. A worker that
stopped listening looks again every RECHECK_SECONDS, so a connection never waits long for the
worker whose turn it is; a dead worker's entry is skipped (its pid is gone) and reused by its
replacement, which is counted only once it has loaded the application and can serve.
"""

import ctypes
import multiprocessing
import os
from typing import Any

MAX_WORKERS = 256
RECHECK_SECONDS = 0.005
PID, CONNECTIONS = 0, 1
# [pid, connections] per worker slot. Created when gunicorn's master imports this module (through
# the worker class), before any fork, so that every worker, including replacements, maps the
# same memory.
_table = multiprocessing.RawArray(ctypes.c_int64, MAX_WORKERS * 2)
# Slots below this have been claimed at some point; the ones above are unused.
_slots_used = multiprocessing.RawValue(ctypes.c_int64, 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Turn:
    """One worker's slot in the table.

    A slot's pid is positive while its worker is counted, and minus a pid while it is not:
    reserved by the master until the fork, a worker starting, or a worker stopping."""

    def __init__(self) -> None:
        """A free slot: never used, or left by a process that has exited. Runs in the master,
        which creates workers one at a time, so two workers never claim the same slot."""
        for slot in range(MAX_WORKERS):
            pid = _table[slot * 2 + PID]
            if pid == 0 or not _alive(abs(pid)):
                _table[slot * 2 + PID] = -os.getpid()
                _table[slot * 2 + CONNECTIONS] = 0
                _slots_used.value = max(_slots_used.value, slot + 1)
                self.slot = slot
                return
        raise RuntimeError(f"more than {MAX_WORKERS} workers")

    def starting(self) -> None:
        """In the new worker, before it loads the application: not counted yet. A worker still
        starting (a second or more) holds no connection and would stop everyone else listening."""
        _table[self.slot * 2 + PID] = -os.getpid()

    def serving(self, connections: int) -> None:
        """Counted by the others from here, once the application is loaded."""
        _table[self.slot * 2 + CONNECTIONS] = connections
        _table[self.slot * 2 + PID] = os.getpid()

    def publish(self, connections: int) -> None:
        _table[self.slot * 2 + CONNECTIONS] = connections

    def stopping(self) -> None:
        """No longer counted: its connections leave as it finishes them, and the others must not
        wait for a worker that accepts nothing more."""
        _table[self.slot * 2 + PID] = -os.getpid()

    def mine(self, connections: int) -> bool:
        """Whether no live worker holds fewer connections than `connections`, this one's."""
        me = os.getpid()
        for slot in range(_slots_used.value):
            pid = _table[slot * 2 + PID]
            if pid > 0 and pid != me and _table[slot * 2 + CONNECTIONS] < connections and _alive(pid):
                return False
        return True


class TakesTurns:
    """For a gunicorn worker class: a slot claimed in the master, and not counted by the others
    while the worker loads the application."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.turn = Turn()

    def init_process(self) -> None:
        self.turn.starting()
        super().init_process()  # type: ignore[misc]
