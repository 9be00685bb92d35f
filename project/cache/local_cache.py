"""The in-process layer in front of Redis: a hot cached read with no network round trip.

project/cache/store.py serves an entry only while the generation tokens it was built under are the
current ones, and those tokens live in Redis, so every hit used to cost a round trip to read
them. This layer keeps, per process, the tokens it has read and the entries it has served, and
learns of every token a write replaces through Redis's own invalidation messages: one
connection per process runs `CLIENT TRACKING on REDIRECT <itself> BCAST PREFIX <tokens' prefix>`
and is subscribed to `__redis__:invalidate`, so Redis tells it the name of each token key that
any process changes (Redis 6+; redis-py's client-side cache needs 7.4).

A write on another worker is seen by the next read here: before it trusts a local token, a
lookup reads what has arrived on that connection (a poll with no wait, no round trip). Redis
queues the message before it answers the writer, so it is on this socket before the writer's
client can send its next request anywhere. Tokens are trusted only while the connection is up;
when it drops (Redis down or restarted) the layer forgets everything and reads go to Redis until
it reconnects, at most once per CACHE_BREAKER_COOLDOWN. A token read from Redis is remembered
only if no invalidation arrived meanwhile, so a token replaced during the read is never kept;
and local tokens are trusted only while the connection answers its heartbeat (below).
"""

import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import redis
from django.conf import settings

INVALIDATION_CHANNEL = b"__redis__:invalidate"
# A silent connection is not proof that nothing changed: Redis may be unreachable without the
# connection closing (a partition, a paused or hung server), and then writes elsewhere fail to
# replace tokens that this process would keep serving. So the connection is pinged every
# HEARTBEAT_SECONDS, and local tokens are trusted only while the last answer is younger than
# TRUST_SECONDS: the longest a blackholed Redis can make this layer serve an entry a write made
# stale is TRUST_SECONDS.
HEARTBEAT_SECONDS = 0.5
TRUST_SECONDS = 1.5
# Bytes of rendered JSON kept per process, least recently used out first. A page of 20 posts is
# ~10 KB, a profile ~0.3 KB: this holds the hottest few hundred pages or thousands of profiles.
# 10,000 entries of any size grew each worker from 101 to 141 MiB in the 10-minute soak.
MAX_BYTES = 4 * 1024 * 1024
# Generation tokens kept per process (one per user, post... read), oldest out first: unbounded,
# the tokens of 100k users read once each grew a worker by 45 MiB in the soak. A token let go is
# read from Redis again at its next use.
MAX_TOKENS = 20_000


class LocalLayer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: Any = None
        self._connection: Any = None
        self._pid = 0
        self._retry_at = 0.0
        self._pinged_at = 0.0
        self._answered_at = 0.0
        # Bumped by every invalidation: a read that started before a bump may carry old tokens.
        self.invalidations = 0
        self._tokens: OrderedDict[str, Any] = OrderedDict()
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._entry_bytes = 0

    # --- the tracking connection ------------------------------------------------------------

    def _live(self, client: Any, token_prefix: str) -> bool:
        """Whether local tokens can be trusted: the tracking connection is up and has delivered
        every invalidation Redis sent it. Called with the lock held."""
        pool = client.connection_pool
        if pool is not self._pool or self._pid != os.getpid():
            # Another Redis (settings changed) or a forked child: nothing here is ours.
            self._reset(retry_now=True)
            self._pool, self._pid = pool, os.getpid()
        if self._connection is None:
            if time.monotonic() < self._retry_at:
                return False
            self._connect(token_prefix)
            return self._connection is not None
        now = time.monotonic()
        try:
            while self._connection.can_read(timeout=0):
                self._apply(self._connection.read_response(), now)
            if self._pinged_at <= self._answered_at and now - self._answered_at >= HEARTBEAT_SECONDS:
                self._connection.send_command("PING")
                self._pinged_at = now
        except (redis.RedisError, OSError):
            self._reset(retry_now=False)
            return False
        if now - self._answered_at > TRUST_SECONDS:
            # Unanswered for too long: forget, and read from Redis until it answers again.
            self._tokens.clear()
            return False
        return True

    def _connect(self, token_prefix: str) -> None:
        # RESP2, where each invalidation arrives as a plain pub/sub message that read_response
        # returns (under RESP3 redis-py hands push messages to handlers instead).
        connection = self._pool.connection_class(**{**self._pool.connection_kwargs, "protocol": 2})
        try:
            connection.connect()
            connection.send_command("CLIENT", "ID")
            client_id = connection.read_response()
            connection.send_command("CLIENT", "TRACKING", "on", "REDIRECT", client_id, "BCAST", "PREFIX", token_prefix)
            connection.read_response()
            connection.send_command("SUBSCRIBE", INVALIDATION_CHANNEL)
            connection.read_response()
        except (redis.RedisError, OSError):
            connection.disconnect()
            self._retry_at = time.monotonic() + float(settings.CACHE_BREAKER_COOLDOWN)
            return
        self._connection = connection
        self._pinged_at = self._answered_at = time.monotonic()
        self.invalidations += 1

    def _reset(self, *, retry_now: bool) -> None:
        if self._connection is not None:
            self._connection.disconnect()
        self._connection = None
        self._tokens.clear()
        self._entries.clear()
        self._entry_bytes = 0
        self.invalidations += 1
        self._retry_at = 0.0 if retry_now else time.monotonic() + float(settings.CACHE_BREAKER_COOLDOWN)

    def _apply(self, message: Any, now: float) -> None:
        """One pub/sub message: the token keys some process changed (None: all of them), or the
        answer to the heartbeat."""
        if isinstance(message, list) and message and message[0] == b"pong":
            self._answered_at = now
            return
        if not (isinstance(message, list) and len(message) == 3 and message[1] == INVALIDATION_CHANNEL):
            return
        self.invalidations += 1
        keys = message[2]
        if keys is None:
            self._tokens.clear()
            return
        for key in keys:
            self._tokens.pop(key.decode() if isinstance(key, bytes) else key, None)

    # --- what store.py asks - -----------------------------------------------------------------

    def tokens(self, client: Any, token_prefix: str, keys: Sequence[str]) -> list[Any] | None:
        """The current values of these token keys (Redis names), or None unless all are known."""
        with self._lock:
            if not self._live(client, token_prefix):
                return None
            found = [self._tokens.get(key) for key in keys]
        return None if None in found else found

    def remember_tokens(self, values: dict[str, Any], *, read_since: int) -> None:
        """Token values read from Redis by a read that started at `read_since` invalidations."""
        with self._lock:
            if self._connection is not None and self.invalidations == read_since:
                self._tokens.update(values)
                while len(self._tokens) > MAX_TOKENS:
                    self._tokens.popitem(last=False)

    def forget_tokens(self, keys: Sequence[str]) -> None:
        """This process changed these tokens: its own next read must not wait for the message."""
        with self._lock:
            self.invalidations += 1
            for key in keys:
                self._tokens.pop(key, None)

    def entry(self, key: str) -> Any:
        entry = self._entries.get(key)
        if entry is not None:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
        return entry

    def remember_entry(self, key: str, entry: Any) -> None:
        """Keep an entry, (tokens, JSON bytes), with a copy of its body exactly as long as it is:
        a body fresh from orjson.dumps holds a buffer of at least 4 KiB whatever its length
        (orjson 3.13), so thousands of short profiles kept as they come would take 30 times the
        memory MAX_BYTES counts (the soak's growing workers)."""
        tokens, body = entry
        entry = (tokens, bytes(memoryview(body)))
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._entry_bytes -= _size(key, previous)
            self._entries[key] = entry
            self._entry_bytes += _size(key, entry)
            while self._entry_bytes > MAX_BYTES and self._entries:
                self._entry_bytes -= _size(*self._entries.popitem(last=False))


# The entry's tuple and its place in the OrderedDict (measured: 10,000 short profiles held
# 351 bytes each, of which key, tokens and body strings 250).
_ENTRY_OVERHEAD = 100


def _size(key: str, entry: Any) -> int:
    """What an entry holds in memory, near enough for MAX_BYTES to bound the process's growth."""
    return sys.getsizeof(key) + sys.getsizeof(entry[0]) + sys.getsizeof(entry[1]) + _ENTRY_OVERHEAD


local_layer = LocalLayer()
