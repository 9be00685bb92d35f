"""A circuit breaker: stop calling a dependency that keeps failing, try again after a pause.

Closed: calls go through; `threshold` consecutive failures open it. Open: calls are refused
at once, without waiting on the dependency. After `cooldown` seconds one trial call is let
through (half-open): its success closes the breaker, its failure opens it again.
"""

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(self, name: str, *, threshold: int, cooldown: Callable[[], float]) -> None:
        self.name = name
        self._threshold = threshold
        self._cooldown = cooldown
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return self._open_until > 0.0

    def allow(self) -> bool:
        """May a call go through now? At most one trial call once the cool-down has passed."""
        if not self._open_until:
            return True
        now = time.monotonic()
        with self._lock:
            if self._open_until and now >= self._open_until:
                # Half-open: this caller is the trial; the others keep being refused meanwhile.
                self._open_until = now + self._cooldown()
                return True
            return not self._open_until

    def record_failure(self, error: BaseException) -> None:
        with self._lock:
            self._failures += 1
            opening = self._failures >= self._threshold and not self._open_until
            if self._failures >= self._threshold:
                self._open_until = time.monotonic() + self._cooldown()
        if opening:
            logger.warning("%s failing (%s): circuit open, retrying every %.1f s", self.name, error, self._cooldown())

    def record_success(self) -> None:
        if not (self._failures or self._open_until):
            return
        with self._lock:
            closing = bool(self._open_until)
            self._failures = 0
            self._open_until = 0.0
        if closing:
            logger.warning("%s answering again: circuit closed", self.name)

    def reset(self) -> None:
        with self._lock:
            self._failures = 0
            self._open_until = 0.0
