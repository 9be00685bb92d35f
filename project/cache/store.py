"""The one cache helper: every cached read goes through `cached_json`, every write's
invalidation through `invalidate`, and only this module knows the key scheme.

Keys are built from values, never from Python's `hash()` (salted per process), so every
worker and every restart computes the same key:

    v1:<name>:<parts...>   ->   (<epoch token>.<scope token>..., JSON bytes)

Each scope ("user:42", "post:7", "feed", "authors") has a generation token stored in Redis.
A write replaces the tokens of the scopes it touches. An entry carries the tokens it was
built under, and is served only while they are still the current ones: a write makes every
entry of its scopes stale at once, without scanning keys. One MGET reads an entry together
with the current tokens, so a hit costs one round trip to Redis; a hit this process has served
before costs none: project/cache/local_cache.py keeps the tokens and entries in memory and learns of
every token a write replaces, on any worker, from Redis's invalidation messages.

Entries hold rendered JSON bytes, so a hit costs no serializer and no renderer. When a hot
entry is missing, one process computes it while the others wait briefly for its result
(stampede protection). When Redis is unreachable everything is computed from PostgreSQL;
every process that found Redis unusable starts a new epoch once it answers again, so no
entry from before the outage is served afterwards: an invalidation lost meanwhile may have
been another process's, one that is slower to reconnect or no longer alive (a worker
replaced during the outage; tests/test_faults.py shows both).
"""

import hashlib
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache as default_cache
from django.http import HttpRequest, HttpResponse
from django.utils.cache import get_conditional_response
from django_redis.cache import RedisCache
from rest_framework.response import Response

from project.cache.local_cache import local_layer
from project.db.routing import primary_reads
from project.observability import metrics

# The default cache is django-redis; its methods answer None where an error was swallowed.
cache = cast(RedisCache, default_cache)

API_VERSION = "v1"
EPOCH_SCOPE = "epoch"
FILL_LOCK_SECONDS = 5
FILL_WAIT_SECONDS = 2.0
FILL_POLL_SECONDS = 0.01


def _new_token() -> str:
    return uuid.uuid4().hex[:12]


def _generation_key(scope: str) -> str:
    return f"{API_VERSION}:gen:{scope}"


def _entry_key(name: str, parts: Iterable[object]) -> str:
    return ":".join([API_VERSION, name, *(str(part) for part in parts)])


@dataclass(frozen=True)
class CachedRead:
    """One cached JSON read: `name` is a fixed endpoint name (also the metric label), `parts`
    what distinguishes one entry from another (ids, page size, host), `scopes` the generations
    the entry depends on."""

    name: str
    parts: tuple[object, ...]
    scopes: tuple[str, ...]

    @property
    def key(self) -> str:
        return _entry_key(self.name, self.parts)

    @property
    def lookup_keys(self) -> list[str]:
        """The entry's key and its generations' keys: what a lookup reads, in one MGET."""
        return [self.key, *(_generation_key(scope) for scope in (EPOCH_SCOPE, *self.scopes))]


class _PendingEpoch:
    """Invalidations that may have been lost while Redis was unusable, by any process (per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = False

    def mark(self) -> None:
        with self._lock:
            self._pending = True

    def flush(self) -> bool:
        """Start the new epoch if one is pending; whether one was (values read before are stale).

        One thread starts it, under the lock: threads that each wrote their own epoch would each
        read different tokens, and every request of the burst after an outage would miss and
        compute its entry (a stampede on the database just when Redis is back).
        """
        if not self._pending:
            return False
        with self._lock:
            if self._pending and cache.set(_generation_key(EPOCH_SCOPE), _new_token(), timeout=None):
                self._pending = False
        return True


_pending_epoch = _PendingEpoch()


def _redis_name(key: str) -> str:
    return str(cache.client.make_key(key))


def local_tokens(read: CachedRead) -> list[Any] | None:
    """The current tokens of the read's generations from this process's layer, or None unless
    it knows and can vouch for all of them."""
    return _local_tokens([_redis_name(key) for key in read.lookup_keys[1:]])


def _local_tokens(names: list[str]) -> list[Any] | None:
    return local_layer.tokens(cache.client.get_client(write=False), _redis_name(_generation_key("")), names)


def _lookup(read: CachedRead) -> tuple[str, Any] | None:
    """The current tokens of the epoch and the read's scopes (joined) and its entry (None if
    absent), from this process's layer when it knows them (project/cache/local_cache.py), else read
    together from Redis; None when Redis cannot be used."""
    if _pending_epoch.flush():
        local_layer.forget_tokens([_redis_name(_generation_key(EPOCH_SCOPE))])
    entry_key, *keys = read.lookup_keys
    names = [_redis_name(key) for key in keys]
    local = _local_tokens(names)
    if local is not None:
        tokens = ".".join(str(token) for token in local)
        entry = local_layer.entry(entry_key)
        if _current(entry, tokens) is not None:
            return tokens, entry
    read_since = local_layer.invalidations
    found = cache.get_many([entry_key, *keys]) or {}
    missing = [generation for generation in keys if generation not in found]
    if missing:
        # A scope never written (or evicted) gets a fresh token, never a default one: an entry
        # built under an earlier token can then not become reachable again.
        for generation in missing:
            cache.add(generation, _new_token(), timeout=None)
        found.update(cache.get_many(missing) or {})
    if any(generation not in found for generation in keys):
        _pending_epoch.mark()
        return None
    local_layer.remember_tokens(dict(zip(names, (found[key] for key in keys), strict=True)), read_since=read_since)
    tokens = ".".join(str(found[generation]) for generation in keys)
    entry = found.get(entry_key)
    if _current(entry, tokens) is not None:
        local_layer.remember_entry(entry_key, entry)
    return tokens, entry


def invalidate(*scopes: str) -> None:
    """Make every cached entry of these scopes unreachable. Call after the write commits."""
    # cache.set answers True, or None when django-redis swallowed an error (Redis down).
    written = [cache.set(_generation_key(scope), _new_token(), timeout=None) for scope in scopes]
    local_layer.forget_tokens([_redis_name(_generation_key(scope)) for scope in scopes])
    if not all(written):
        _pending_epoch.mark()


def _render(data: Any) -> bytes:
    return orjson.dumps(data)


def cached_json(read: CachedRead, *, compute: Callable[[], Any]) -> bytes:
    """The JSON bytes of `compute()`, from the cache when possible."""
    found = _lookup(read)
    if found is None:
        metrics.record_cache(read.name, hit=False)
        return _render(compute())
    tokens, entry = found
    body = _current(entry, tokens)
    metrics.record_cache(read.name, hit=body is not None)
    if body is not None:
        return body
    return _fill(read.key, tokens, compute)


def _current(entry: Any, tokens: str) -> bytes | None:
    """The entry's body if it was built under `tokens` (the current ones)."""
    if isinstance(entry, tuple) and entry[0] == tokens:
        return bytes(entry[1])
    return None


def _fill(key: str, tokens: str, compute: Callable[[], Any]) -> bytes:
    """Compute a missing entry once per key and tokens, however many requests miss it together.

    The others poll for the entry; they stop waiting and compute it themselves when the
    filler gives up (its compute raised, e.g. a 404, and it released the lock) or after
    FILL_WAIT_SECONDS.
    """
    lock_key = f"{key}:{tokens}:fill"
    acquired = cache.add(lock_key, 1, timeout=FILL_LOCK_SECONDS)
    if acquired is False:
        deadline = time.monotonic() + FILL_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(FILL_POLL_SECONDS)
            found = cache.get_many([key, lock_key])
            if (body := _current(found.get(key), tokens)) is not None:
                return body
            if lock_key not in found:
                break
    try:
        # From the primary: an entry built from a lagging replica would outlive the write
        # that invalidated its predecessor by CACHE_TTL seconds, for every client.
        with primary_reads():
            body = _render(compute())
        cache.set(key, (tokens, body), timeout=settings.CACHE_TTL)
        local_layer.remember_entry(key, (tokens, body))
    finally:
        if acquired:
            cache.delete(lock_key)
    return body


def json_response(request: HttpRequest, body: bytes, *, status: int = 200) -> HttpResponse:
    """A JSON response with an ETag, answering 304 to a matching If-None-Match.

    Responses are revalidated on every use (`no-cache`): the data changes on writes, and a
    304 costs the client one round trip and no body. Answers to signed-in clients are
    `private`, so shared caches never store them. A browser that asked for HTML (DRF chose the
    browsable API's renderer) gets the same data through DRF's renderer instead.
    """
    renderer = getattr(request, "accepted_renderer", None)
    if renderer is not None and renderer.format != "json":
        return Response(orjson.loads(body), status=status)
    response = HttpResponse(body, status=status, content_type="application/json")
    if status == 200:
        response["ETag"] = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
        response = get_conditional_response(request, etag=response["ETag"], response=response) or response
    authenticated = bool(request.META.get("HTTP_AUTHORIZATION")) or settings.SESSION_COOKIE_NAME in request.COOKIES
    # Set, not patched: the response is new, so there is nothing to merge with.
    response["Cache-Control"] = "no-cache, private" if authenticated else "no-cache, public"
    response["Vary"] = "Authorization, Cookie"
    return response


# --- scopes: what an entry depends on; services invalidate them after their writes ------------

FEED_SCOPE = "feed"
# The active-users list: sign-ups, profile edits, deactivations and post counts change it.
USERS_SCOPE = "users"
# Author names appear in post details and feed pages; a rename invalidates them all.
AUTHORS_SCOPE = "authors"


def user_scope(user_id: int) -> str:
    return f"user:{user_id}"


def post_scope(post_id: int) -> str:
    return f"post:{post_id}"


def first_page_read(
    request: HttpRequest, name: str, key: tuple[object, ...], scopes: tuple[str, ...]
) -> CachedRead | None:
    """The cache entry of a collection's first page, or None when the request asks for another
    page (only first pages are cached).

    The page's links are absolute URLs, so the scheme and host are part of the key.
    """
    if "cursor" in request.GET:
        return None
    return CachedRead(name, (*key, request.build_absolute_uri("/"), request.GET.get("page_size", "")), scopes)


def page_response(request: HttpRequest, read: CachedRead | None, page: Callable[[], Any]) -> HttpResponse:
    """A collection page: its cached JSON when `read` names an entry, else computed by `page`."""
    if read is None:
        return Response(page())
    return json_response(request, cached_json(read, compute=page))


async def cached_external(*, name: str, parts: Iterable[object], ttl: int, fetch: Callable[[], Awaitable[Any]]) -> Any:
    """An outbound call's result, kept `ttl` seconds; a None result (a failure) is not kept.

    Redis is called from a worker thread of its own (django-redis is thread-safe), not through
    Django's single sync thread (`cache.aget`), which the request's database work occupies:
    waiting for it would put the outbound call after the queries instead of beside them.
    """
    key = _entry_key(name, parts)
    value = await sync_to_async(cache.get, thread_sensitive=False)(key)
    metrics.record_cache(name, hit=value is not None)
    if value is None:
        value = await fetch()
        if value is not None:
            await sync_to_async(cache.set, thread_sensitive=False)(key, value, timeout=ttl)
    return value
