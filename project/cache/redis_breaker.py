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
from typing import Any

import redis
from django.conf import settings
from django_redis.pool import ConnectionFactory

from project.observability import metrics
from project.resilience.breaker import CircuitBreaker


def _cooldown() -> float:
    return float(getattr(settings, "CACHE_BREAKER_COOLDOWN", 5.0))


# One failed connect is enough: a cache that cannot be reached is not worth a second wait.
breaker = CircuitBreaker("Redis", threshold=1, cooldown=_cooldown)


_FAILURES = (redis.ConnectionError, redis.TimeoutError, OSError)


class CircuitOpenError(redis.ConnectionError):
    """A connect refused without touching the network, because the breaker is open."""


class SkipCircuitOpen(logging.Filter):
    """Drop django-redis' "Exception ignored" records for calls the open breaker refused.

    The breaker logs an outage once when it opens and once when it closes; without this
    filter every cache call during the outage adds a traceback (several per request), and
    formatting them cost more CPU than serving the request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:
            if isinstance(error, CircuitOpenError):
                return False
            error = error.__cause__
        return True


class _BreakerMixin:
    """Connect through the breaker; a failed connect or a timed-out reply opens it.

    redis-py drops a connection whose reply failed, so the next command reconnects, and that
    connect is refused at once while the breaker is open.
    """

    def connect(self) -> None:
        if not breaker.allow():
            raise CircuitOpenError("Redis marked unreachable by the circuit breaker")
        try:
            super().connect()  # type: ignore[misc]
        except _FAILURES as error:
            _failed(error)
            raise
        breaker.record_success()

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except _FAILURES as error:
            _failed(error)
            raise


def _failed(error: BaseException) -> None:
    metrics.record_cache_error("connection")
    breaker.record_failure(error)


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
