"""What a database error means to the code that catches it."""

from psycopg.errors import QueryCanceled


def query_cancelled(error: BaseException) -> bool:
    """Whether Django's OperationalError is PostgreSQL cancelling a statement (statement_timeout)."""
    return isinstance(error.__cause__, QueryCanceled)
