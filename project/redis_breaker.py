"""Fail fast while Redis is down: a circuit breaker at the connection level.

django-redis with IGNORE_EXCEPTIONS already turns a Redis error into a cache miss, but every
call would still try to connect first: with a blackholed server that is one connect timeout
per cache call, several per request. Here the first failed connect opens the breaker; for
the cool-down period every connection attempt in this process fails at once, without
touching the network; then one attempt is let through (half-open) and success closes it.

It sits in the redis-py Connection class (through django-redis' CONNECTION_FACTORY), so it
covers every cache user alike: the response cache, DRF's throttles, sessions.
"""

import logging
import threading
import time
from typing import Any

import redis
from django.conf import settings
from django_redis.pool import ConnectionFactory

from project import metrics

logger = logging.getLogger(__name__)


class RedisBreaker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._degraded = False

    def before_connect(self) -> None:
        if time.monotonic() < self._open_until:
            raise redis.ConnectionError("Redis marked unreachable by the circuit breaker")

    def failure(self, error: BaseException) -> None:
        cooldown = float(getattr(settings, "CACHE_BREAKER_COOLDOWN", 5.0))
        with self._lock:
            self._open_until = time.monotonic() + cooldown
            first = not self._degraded
            self._degraded = True
        metrics.record_cache_error("connect")
        if first:
            logger.warning("Redis unreachable (%s): serving without cache, retrying every %.0f s", error, cooldown)

    def success(self) -> None:
        if not self._degraded:
            return
        with self._lock:
            recovered, self._degraded = self._degraded, False
        if recovered:
            logger.warning("Redis reachable again: caching resumed")

    def reset(self) -> None:
        """Forget past failures (tests that stop Redis on purpose start from a clean state)."""
        with self._lock:
            self._open_until = 0.0
            self._degraded = False


breaker = RedisBreaker()


_FAILURES = (redis.ConnectionError, redis.TimeoutError, OSError)


class _BreakerMixin:
    """Connect through the breaker; a failed connect or a timed-out reply opens it.

    redis-py drops a connection whose reply failed, so the next command reconnects, and that
    connect is refused at once while the breaker is open.
    """

    def connect(self) -> None:
        breaker.before_connect()
        try:
            super().connect()  # type: ignore[misc]
        except _FAILURES as error:
            breaker.failure(error)
            raise
        breaker.success()

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except _FAILURES as error:
            breaker.failure(error)
            raise


class BreakerConnection(_BreakerMixin, redis.Connection):
    pass


class BreakerUnixConnection(_BreakerMixin, redis.UnixDomainSocketConnection):
    pass


class BreakerConnectionFactory(ConnectionFactory):
    """django-redis' factory, with connections that consult the breaker."""

    def make_connection_params(self, url: str) -> dict[str, Any]:
        params = super().make_connection_params(url)
        params["connection_class"] = BreakerUnixConnection if url.startswith("unix:") else BreakerConnection
        return params
