"""Request throttling with one Redis round trip and O(1) state per client.

DRF's SimpleRateThrottle keeps, per client, the list of every request time in the window and
reads and writes it (pickled) on each request: with a generous rate that is thousands of
floats per request, and two throttles (anon and user) double it. Here each client has one
counter per fixed window (INCR, and EXPIRE on creation, in one Lua script). A fixed window
lets a client send up to twice the rate across a window boundary, which is acceptable for
abuse protection.

The same script reads the keys of the cache entry the view is about to look up (a view's
`cached_read`, see project/caching.py), so a cached read costs one Redis round trip in all,
not one for the throttle and one for the cache.

When Redis cannot be reached the request is allowed (fail open); the circuit breaker in the
connection class keeps that from costing a timeout per request.
"""

import math
import time
from typing import Any

import redis
from django.core.cache import cache
from django_redis import get_redis_connection
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from project import caching

# The window's counter: INCR, and EXPIRE only when it was just created (a key that somehow
# lost its TTL gets none again, but the window is part of its name). One command and one
# reply (EVALSHA) instead of a pipeline's two. Then the values of the other keys (a cache
# lookup's), as MGET would answer them.
COUNT_IN_WINDOW = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
if #KEYS == 1 then
    return {count}
end
return {count, unpack(redis.call('MGET', unpack(KEYS, 2)))}
"""


def parse_rate(rate: str) -> tuple[int, int]:
    """'120/min' -> (120, 60)."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[:1]]
    return int(count), seconds


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
        key = cache.make_key(f"throttle:{scope}:{ident}:{window}")
        read: caching.CachedRead | None = getattr(view, "cached_read", None)
        prefetch = caching.prefetch_keys(read) if read is not None else []
        try:
            client: Any = get_redis_connection("default")
            count, *values = client.register_script(COUNT_IN_WINDOW)(keys=[key, *prefetch], args=[period + 1])
        except redis.RedisError:
            return True
        if read is not None:
            caching.remember_prefetched(request, read, values)
        self._wait = (window + 1) * period - now
        return int(count) <= limit

    def wait(self) -> float | None:
        return math.ceil(self._wait) if self._wait is not None else None
