"""Timestamps read by psycopg's C parser, not by the pure-Python one Django installs.

Django's psycopg 3 support registers its own timestamptz loader on every connection
(django/db/backends/postgresql/psycopg_any.py: BaseTzLoader) to give each value Django's time
zone. It subclasses psycopg's pure-Python TimestamptzLoader: the C one of psycopg[binary] is
final. So every timestamp Postline read was parsed in Python: 10.9 us of CPU a value against
2.4 us through psycopg's C loader (in-process, 63 timestamps against 63 NULLs). A search page
reads ~100 (its posts' created_at and updated_at, the window's edges): its Python went from
4.9-5.5 to 3.9-4.6 ms of CPU (docs/performance.md). Known upstream: Django ticket #36960,
psycopg issue #1273.

Where Django's loader changes nothing, this one takes its place: with USE_TZ and a connection
in UTC (Django sets the session's TimeZone to timezone_name on connecting), psycopg's own
loader returns the same instant with the same tzinfo, datetime.timezone.utc. Anywhere else
(USE_TZ off, another database TIME_ZONE) Django's stays.
"""

import datetime
import functools
from typing import Any, cast

from psycopg import adapt, adapters
from psycopg.pq import Format

_TIMESTAMPTZ_OID = adapters.types["timestamptz"].oid
# What psycopg itself registers for timestamptz: the C loader when psycopg[binary] or
# psycopg[c] is installed, its pure-Python class otherwise (never None: psycopg registers one).
_NATIVE_LOADER = cast(type[adapt.Loader], adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT))


class UTCTimestamptzLoader(adapt.Loader):
    """psycopg's timestamptz loader, for a connection whose TimeZone is UTC.

    `timezone` is what Django's create_cursor compares with the connection's: equal, it
    registers no loader of its own on the cursor."""

    timezone = datetime.UTC

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        self._native = _NATIVE_LOADER(oid, context)
        # The native loader's bound method as this instance's `load`: psycopg's row loading
        # calls it directly, without a Python frame of ours per value.
        self.load = self._native.load  # type: ignore[method-assign]

    def load(self, data: Any) -> Any:  # the Loader protocol's method; instances use the attribute
        return self._native.load(data)


@functools.cache
def _with_native_timestamps(template: adapt.AdaptersMap) -> adapt.AdaptersMap:
    """Django's adapters map (one per time zone setting, cached by Django) with the loader above."""
    context = adapt.AdaptersMap(template)
    context.register_loader(_TIMESTAMPTZ_OID, UTCTimestamptzLoader)
    return context


class NativeTimestampsMixin:
    """For a subclass of django.db.backends.postgresql's DatabaseWrapper."""

    timezone: datetime.tzinfo | None

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()  # type: ignore[misc]
        # timezone.utc itself: USE_TZ on and no TIME_ZONE of the database's own, so the
        # connection's TimeZone is "UTC" (Django's timezone_name).
        if self.timezone is datetime.UTC:
            params["context"] = _with_native_timestamps(params["context"])
        return params
