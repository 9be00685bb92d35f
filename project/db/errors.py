"""What a database error means to the code that catches it."""

from psycopg.errors import LockNotAvailable, QueryCanceled


def query_cancelled(error: BaseException) -> bool:
    """Whether Django's OperationalError is PostgreSQL cancelling a statement (statement_timeout)."""
    return isinstance(error.__cause__, QueryCanceled)


def lock_not_available(error: BaseException) -> bool:
    """Whether Django's OperationalError is PostgreSQL giving up a lock wait (lock_timeout)."""
    return isinstance(error.__cause__, LockNotAvailable)
