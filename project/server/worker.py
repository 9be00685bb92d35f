"""gunicorn's gthread worker, taking new connections only while it holds no more than any other.

All workers share the master's listening socket, which outlives any worker (a socket of each
worker's own, SO_REUSEPORT, dies with it and resets the connections queued on it:
docs/performance.md). The stock gthread worker watches that socket with its poller, and every
worker is woken for a new connection; the one already on a CPU wins the accept. Under a burst of
keep-alive connections (a load balancer's pool, wrk) one worker often takes all of them and
keeps them while the other idles: measured, one worker at 100 % CPU and the other at 0 %, half
the throughput. Nothing a worker sees on its own socket can tell it that another worker is idle.

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

from gunicorn.workers.gthread import ThreadWorker

MAX_WORKERS = 256
RECHECK_SECONDS = 0.005
PID, CONNECTIONS = 0, 1
# [pid, connections] per worker slot. Created when gunicorn's master imports this module, before
# any fork, so that every worker, including replacements, maps the same memory.
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


def _claim_slot() -> int:
    """A free slot: never used, or left by a process that has exited. Runs in the master, which
    creates workers one at a time, so two workers never claim the same slot.

    A slot's pid is positive while its worker is counted, and minus a pid while it is not:
    reserved by the master until the fork, a worker starting, or a worker stopping."""
    for slot in range(MAX_WORKERS):
        pid = _table[slot * 2 + PID]
        if pid == 0 or not _alive(abs(pid)):
            _table[slot * 2 + PID] = -os.getpid()
            _table[slot * 2 + CONNECTIONS] = 0
            _slots_used.value = max(_slots_used.value, slot + 1)
            return slot
    raise RuntimeError(f"more than {MAX_WORKERS} workers")


class BalancedThreadWorker(ThreadWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slot = _claim_slot()

    def init_process(self) -> None:
        _table[self.slot * 2 + PID] = -os.getpid()
        super().init_process()

    def run(self) -> None:
        """Counted by the others from here, once the application is loaded: a worker still
        starting (a second or more) holds no connection and would stop everyone else listening."""
        _table[self.slot * 2 + CONNECTIONS] = self.nr_conns
        _table[self.slot * 2 + PID] = os.getpid()
        super().run()

    def _publish(self) -> None:
        """The count, or, once stopping, no longer counted: its connections leave as it finishes
        them, and the others must not wait for a worker that accepts nothing more."""
        if self.alive:
            _table[self.slot * 2 + CONNECTIONS] = self.nr_conns
        else:
            _table[self.slot * 2 + PID] = -os.getpid()

    def _my_turn(self) -> bool:
        """Whether no live worker holds fewer connections than this one."""
        me = os.getpid()
        for slot in range(_slots_used.value):
            pid = _table[slot * 2 + PID]
            if pid > 0 and pid != me and _table[slot * 2 + CONNECTIONS] < self.nr_conns and _alive(pid):
                return False
        return True

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self._my_turn())

    def accept(self, listener: Any) -> None:
        super().accept(listener)
        self._publish()
        if not self._my_turn():
            self.set_accept_enabled(False)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        self._publish()
        super().wait_for_and_dispatch_events(timeout if self._accepting else min(timeout, RECHECK_SECONDS))
