"""Read replicas: reads to a replica, writes to the primary, and a client reads its own writes.

Configured by DATABASE_REPLICA_URLS (settings adds the aliases `replica_1`, `replica_2`...;
without it no router is installed and this module is idle). docs/scale-out.md has the design.

- PrimaryReplicaRouter sends writes, migrations, reads inside a transaction on the primary and
  reads outside a web request (commands, shells, tests) to the primary; reads of a web request
  go to a healthy replica unless the request is pinned to the primary.
- ReadYourWritesMiddleware (project/http/middleware.py) pins a request when its method is unsafe, and for
  READ_YOUR_WRITES_SECONDS after a client's successful write: through a short-lived signed
  cookie, and through a Redis key per Authorization header for API clients that keep no
  cookies. The pin lives in a context variable, which follows the request into the thread
  `sync_to_async` runs sync code in.
- `replica_health` remembers, per process, which replica failed to connect: for
  DATABASE_REPLICA_COOLDOWN seconds the router passes it over. The replica backend
  (project.db.backends.replica) marks it and serves the failing request from the primary.
- `read_transaction()` runs a block of reads in one transaction on the database that serves
  them, and runs it again elsewhere when a replica is lost under it.
- `primary_reads()` pins a block of code: cache fills use it, because an entry built from a
  lagging replica would be served to everyone for CACHE_TTL seconds after the write.
"""

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.db.models import Model

from project.db.errors import ReplicaLostError

logger = logging.getLogger(__name__)

Result = TypeVar("Result")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
COOKIE_NAME = "postline_rw"
COOKIE_SALT = "project.db_routing.read-your-writes"  # kept from the old module path: signed cookies stay valid
CREDENTIAL_KEY_PREFIX = "rw:"


def replica_aliases() -> list[str]:
    return list(settings.DATABASE_REPLICAS)


class ReplicaHealth:
    """Which replicas failed to connect lately, per process.

    A replica that refused a connection is passed over for DATABASE_REPLICA_COOLDOWN seconds;
    after that the next connection attempt tries it again (and marks it down again if it
    still refuses), so a returning replica takes reads back without a restart.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_until: dict[str, float] = {}

    def is_up(self, alias: str) -> bool:
        return time.monotonic() >= self._down_until.get(alias, 0.0)

    def mark_down(self, alias: str, error: BaseException) -> None:
        with self._lock:
            was_up = alias not in self._down_until
            self._down_until[alias] = time.monotonic() + settings.DATABASE_REPLICA_COOLDOWN
        if was_up:
            logger.warning(
                "replica %s unavailable (%s): reads go to the primary, retrying every %.1f s",
                alias,
                str(error).strip() or type(error).__name__,
                settings.DATABASE_REPLICA_COOLDOWN,
            )

    def mark_up(self, alias: str) -> None:
        if alias not in self._down_until:
            return
        with self._lock:
            recovered = self._down_until.pop(alias, None) is not None
        if recovered:
            logger.warning("replica %s answering again: reads go back to it", alias)

    def reset(self) -> None:
        with self._lock:
            self._down_until.clear()


replica_health = ReplicaHealth()


@dataclass
class RequestRouting:
    """Where one request's reads go. `credential_key` is looked up in Redis at the first read,
    so requests answered from the cache, and every request under ASGI's event loop, never
    wait on it."""

    pinned: bool
    credential_key: str | None = None
    _credential_checked: bool = field(default=False, repr=False)

    def reads_from_primary(self) -> bool:
        if not self.pinned and self.credential_key and not self._credential_checked:
            self._credential_checked = True
            # None when Redis is unreachable (the cache fails open): the cookie still pins.
            self.pinned = bool(cache.get(self.credential_key))
        return self.pinned


request_routing: ContextVar[RequestRouting | None] = ContextVar("postline_request_routing", default=None)
_primary_block: ContextVar[bool] = ContextVar("postline_primary_reads", default=False)


@contextmanager
def primary_reads() -> Iterator[None]:
    """Every read in the block goes to the primary."""
    token = _primary_block.set(True)
    try:
        yield
    finally:
        _primary_block.reset(token)


def read_transaction(model: type[Model], read: Callable[[str], Result]) -> Result:
    """`read(alias)` inside one transaction on the database that serves reads of `model`.

    The replica backend repeats a statement whose connection was lost only outside a
    transaction: inside one, a statement is not safe to repeat alone. A transaction on a
    replica only reads, though, so the whole of it is: when the replica goes away under it
    (stopped, crashed), it runs once more where reads go next, another replica or the primary.
    """
    alias = router.db_for_read(model)
    try:
        with transaction.atomic(using=alias):
            return read(alias)
    except ReplicaLostError:
        pass  # marked down by the replica backend: the router passes it over now
    alias = router.db_for_read(model)
    with transaction.atomic(using=alias):
        return read(alias)


def _reads_go_to_primary() -> bool:
    if _primary_block.get():
        return True
    routing = request_routing.get()
    if routing is None or routing.reads_from_primary():
        return True
    # A transaction on the primary must see its own uncommitted rows (and pytest-django's
    # TestCase runs every test inside one).
    return connections[DEFAULT_DB_ALIAS].in_atomic_block


class PrimaryReplicaRouter:
    """Django's database router for one primary (`default`) and its streaming replicas."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        instance = hints.get("instance")
        if instance is not None and instance._state.db:
            # Related rows of an object come from where the object came from.
            return str(instance._state.db)
        if _reads_go_to_primary():
            return DEFAULT_DB_ALIAS
        healthy = [alias for alias in replica_aliases() if replica_health.is_up(alias)]
        return random.choice(healthy) if healthy else DEFAULT_DB_ALIAS  # noqa: S311 -- load spreading

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        """Replicas hold the primary's rows: objects from any of them may be related."""
        return True

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS
