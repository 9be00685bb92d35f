"""The database backend of the read replicas: a replica that cannot serve hands over to the primary.

Two ways a replica fails a read, both turned into a read from the primary inside the same
request, never into an error (only outside a transaction, where a read is safe to repeat):

- it refuses the connection (stopped, restarting, unreachable; under ASGI, a pool that
  cannot hand out a connection in time): `get_new_connection` marks it down in
  `replica_health` and connects to the primary instead;
- it drops an open connection (stopped or crashed mid-request): the cursor reconnects, which
  lands on the primary, and runs the statement again; inside a transaction it raises
  ReplicaLostError instead, for project.db.routing.read_transaction to run the whole
  transaction again.

A connection to the primary made this way is closed at the end of the request, so that the
replica gets its reads back once it answers again (see `ReplicaHealth`).

Built on the same backend as the primary (project.db.backends): django-prometheus's when
metrics are on, and with the health check that needs no round trip.
"""

import logging
import time
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.db.backends.postgresql import base as postgresql
from django.db.backends.utils import CursorWrapper

from project.db.backends.postgresql import base as plain
from project.db.backends.prometheus import base as instrumented
from project.db.errors import ReplicaLostError
from project.db.routing import replica_health

logger = logging.getLogger(__name__)

_Base: Any = instrumented.DatabaseWrapper if settings.METRICS_ENABLED else plain.DatabaseWrapper


class _RetryOnPrimaryMixin:
    """Runs a statement again on the primary when the replica dropped the connection under it."""

    db: "DatabaseWrapper"
    cursor: Any

    def execute(self, sql: Any, params: Any = None) -> Any:
        try:
            return super().execute(sql, params)  # type: ignore[misc]
        except OperationalError as error:
            if not self.db.lost_replica(error):
                raise
            if self.db.in_atomic_block:
                raise ReplicaLostError(str(error)) from error
            self.db.reconnect_to_primary()
        self.cursor = self.db.create_cursor()
        return super().execute(sql, params)  # type: ignore[misc]


class ReplicaCursorWrapper(_RetryOnPrimaryMixin, CursorWrapper):
    pass


class ReplicaCursorDebugWrapper(_RetryOnPrimaryMixin, postgresql.CursorDebugWrapper):
    pass


class DatabaseWrapper(_Base):
    _on_primary = False

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        self._on_primary = False
        if replica_health.is_up(self.alias):
            try:
                connection = super().get_new_connection(conn_params)
            except self.Database.OperationalError as error:  # psycopg_pool.PoolTimeout included
                replica_health.mark_down(self.alias, error)
            else:
                replica_health.mark_up(self.alias)
                return connection
        self._on_primary = True
        return self._connect_to_primary()

    def _connect_to_primary(self) -> Any:
        """A plain connection with the primary's parameters (never one of its pool's)."""
        params = connections[DEFAULT_DB_ALIAS].get_connection_params()
        return self.Database.connect(**params)

    def connect(self) -> None:
        super().connect()
        if self._on_primary:
            # Obsolete at once: closed when the request ends (close_if_unusable_or_obsolete).
            self.close_at = time.monotonic()

    def _close(self) -> None:
        if self._on_primary and self.connection is not None:
            # Not ours to hand back to the replica's pool (ASGI).
            with self.wrap_database_errors:
                self.connection.close()
            return
        super()._close()

    def lost_replica(self, error: OperationalError) -> bool:
        """After a statement failed: was it the replica's connection that was lost? Then the
        replica is marked down."""
        lost = self.connection is None or self.connection.closed or self.connection.broken
        if self._on_primary or not lost:
            return False
        replica_health.mark_down(self.alias, error)
        return True

    def reconnect_to_primary(self) -> None:
        self.close()
        self.connect()

    def make_cursor(self, cursor: Any) -> CursorWrapper:
        return ReplicaCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor: Any) -> CursorWrapper:
        return ReplicaCursorDebugWrapper(cursor, self)
