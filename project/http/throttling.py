"""Request throttling counted in each process and flushed to Redis in batches.

DRF's SimpleRateThrottle keeps, per client, the list of every request time in the window and
reads and writes it (pickled) on each request. Here each client has one counter per fixed
window in Redis (INCRBY, and EXPIRE on creation, in one Lua script). A fixed window lets a
client send up to twice the rate across a window boundary, which is acceptable for abuse
protection.

A round trip per request was the last network call of a hot cached read, so a process counts
its own requests and adds them to Redis in batches of a hundredth of the limit: far from the
limit a request costs no round trip, and from a batch below it every request is counted in
Redis at once, so the decision there is exact. The tolerance: each process may hold back up to
`batch - 1` requests of a client, so a client can pass its limit by at most (processes - 1) x
(batch - 1) requests in a window, about one per cent of the limit per other worker process;
limits up to 199 a window have batches of 1 and are exact (tests/test_api_contract.py).

When Redis cannot be reached the request is allowed (fail open); the circuit breaker in the
connection class keeps that from costing a timeout per request.
"""

import functools
import math
import threading
import time
from typing import Any

import redis
from django.core.cache import cache
from django_redis import get_redis_connection
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

# Add a batch to the window's counter: INCRBY, and EXPIRE only when it was just created (a key
# that somehow lost its TTL gets none again, but the window is part of its name).
ADD_TO_WINDOW = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count == tonumber(ARGV[1]) then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return count
"""
# Of a limit, the share a process counts before it adds its requests to Redis.
BATCH_SHARE = 100


def parse_rate(rate: str) -> tuple[int, int]:
    """'120/min' -> (120, 60)."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[:1]]
    return int(count), seconds


class _Window:
    """One client's window as this process knows it: requests not yet added to Redis, and the
    window's total in Redis after this process's last flush."""

    __slots__ = ("flushed_total", "pending")

    def __init__(self) -> None:
        self.pending = 0
        self.flushed_total = 0


class _LocalCounts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Per window length: the current window's number and its clients' counters.
        self._windows: dict[int, tuple[int, dict[str, _Window]]] = {}

    def count(self, key: str, *, window: int, period: int, limit: int) -> tuple[_Window, int]:
        """Count one request: the client's window, and the requests to add to Redis now (0 while
        this process may still decide alone, far enough below the limit)."""
        batch = max(1, limit // BATCH_SHARE)
        with self._lock:
            number, windows = self._windows.get(period, (-1, {}))
            if number != window:
                # Counters of an earlier window are never read again.
                windows = {}
                self._windows[period] = (window, windows)
            state = windows.get(key)
            if state is None:
                state = windows[key] = _Window()
            state.pending += 1
            if state.pending < batch and state.flushed_total + state.pending < limit - batch:
                return state, 0
            pending, state.pending = state.pending, 0
            return state, pending

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()


local_counts = _LocalCounts()


class WindowRateThrottle(BaseThrottle):
    """The "anon" rate per client address, the "user" rate per signed-in user, or the view's
    own `throttle_scope` rate (e.g. "auth" on the token endpoint) per client address."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def _scope_and_ident(self, request: Request, view: Any) -> tuple[str, str]:
        scope = getattr(view, "throttle_scope", None)
        if scope:
            return scope, self.get_ident(request)
        if request.user and request.user.is_authenticated:
            return "user", str(request.user.pk)
        return "anon", self.get_ident(request)

    def allow_request(self, request: Request, view: Any) -> bool:
        scope, ident = self._scope_and_ident(request, view)
        rate: str | None = api_settings.DEFAULT_THROTTLE_RATES.get(scope)  # type: ignore[assignment]
        if not rate:
            return True
        limit, period = parse_rate(rate)
        now = time.time()
        window = int(now // period)
        self._wait = (window + 1) * period - now
        key = cache.make_key(f"throttle:{scope}:{ident}:{window}")
        state, pending = local_counts.count(key, window=window, period=period, limit=limit)
        used = state.flushed_total + state.pending
        if pending:
            try:
                client: Any = get_redis_connection("default")
                used = int(client.register_script(ADD_TO_WINDOW)(keys=[key], args=[pending, period + 1]))
            except redis.RedisError:
                return True
            state.flushed_total = used
        policy = _policy(scope, limit, period)
        _announce(view, scope=scope, policy=policy, remaining=max(0, limit - used), reset=math.ceil(self._wait))
        return used <= limit

    def wait(self) -> float | None:
        return math.ceil(self._wait) if self._wait is not None else None


@functools.cache
def _policy(scope: str, limit: int, period: int) -> str:
    """A scope's `RateLimit-Policy` value: the same on every response, so built once."""
    return f'"{scope}";q={limit};w={period}'


def _announce(view: Any, *, scope: str, policy: str, remaining: int, reset: int) -> None:
    """The rate-limit headers of draft-ietf-httpapi-ratelimit-headers (-08 to -10):
    `RateLimit-Policy: "anon";q=300;w=86400` (the scope's quota and window in seconds) and
    `RateLimit: "anon";r=12;t=30` (requests left, seconds until the window ends: on a 429 the
    Retry-After), on every throttled response, 429 or not. Two fields rather than the three of
    -06 (RateLimit-Limit, -Remaining, -Reset): a third less of Django's header machinery on
    every request. DRF copies a view's `headers` into its response (APIView.finalize_response),
    so this costs no round trip and no middleware. Remaining is exact where the decision is (a
    batch below the limit); farther below it counts what this process knows."""
    headers = getattr(view, "headers", None)
    if isinstance(headers, dict):
        headers["RateLimit-Policy"] = policy
        headers["RateLimit"] = f'"{scope}";r={remaining};t={reset}'
