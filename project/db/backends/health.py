"""A connection health check that costs no round trip.

With CONN_HEALTH_CHECKS (WSGI: a thread keeps its connection between requests) Django runs
`is_usable()` at the first query of every request, and PostgreSQL's is a `SELECT 1`: a round
trip to the server, and its CPU on both sides, on every request that reads the database.
Here the check asks the kernel instead. An idle connection in autocommit has nothing to read:
every result was consumed. When the server ends it (a restart, pg_terminate_backend,
idle_session_timeout) it sends a FATAL error and closes the socket, so the socket turns
readable. Hence:

- idle and nothing to read (a zero-timeout poll of the socket): usable, no round trip;
- anything else (something to read, a socket error, a transaction left open): Django's
  `SELECT 1` decides. What is waiting may be harmless (a NOTICE, a ParameterStatus after a
  configuration reload) and `SELECT 1` reads past it, so such a connection is kept.

What a poll cannot see, an idle `SELECT 1` could only find by waiting for TCP to time out: a
server gone without a word (host down, network cut). The first query then fails as before,
the request answers 503 (project/http/api.py) and the connection is closed when it ends.
"""

import select
from typing import Any

from psycopg import OperationalError
from psycopg.pq import TransactionStatus

# Anything the server may have sent; POLLERR, POLLHUP and POLLNVAL are reported regardless.
_READABLE = select.POLLIN | select.POLLPRI


def has_pending_input(fileno: int) -> bool:
    """Whether the socket has data, an end of file or an error waiting, without blocking."""
    poller = select.poll()
    poller.register(fileno, _READABLE)
    return bool(poller.poll(0))


class SocketHealthCheckMixin:
    """For a subclass of django.db.backends.postgresql's DatabaseWrapper."""

    connection: Any

    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        try:
            quiet = connection.info.transaction_status == TransactionStatus.IDLE and not has_pending_input(
                connection.fileno()
            )
        except OperationalError:  # the socket is gone
            quiet = False
        return True if quiet else bool(super().is_usable())  # type: ignore[misc]
