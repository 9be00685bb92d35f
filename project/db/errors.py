"""What a database error means to the code that catches it."""

from django.db import OperationalError
from psycopg.errors import LockNotAvailable, QueryCanceled, ReadOnlySqlTransaction


class ReplicaLostError(OperationalError):
    """A replica's connection was lost inside a transaction. A statement there cannot run again
    alone, but a transaction on a replica only reads, so the whole of it can: see
    project.db.routing.read_transaction. Uncaught, it answers 503 like any lost connection."""


def query_cancelled(error: BaseException) -> bool:
    """Whether Django's OperationalError is PostgreSQL cancelling a statement (statement_timeout)."""
    return isinstance(error.__cause__, QueryCanceled)


def lock_not_available(error: BaseException) -> bool:
    """Whether Django's OperationalError is PostgreSQL giving up a lock wait (lock_timeout)."""
    return isinstance(error.__cause__, LockNotAvailable)


def read_only(error: BaseException) -> bool:
    """Whether Django's InternalError is a write refused by a server in recovery: a primary
    being demoted, or a standby reached while a failover moves the primary elsewhere."""
    return isinstance(error.__cause__, ReadOnlySqlTransaction)
