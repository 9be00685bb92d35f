"""The database backend's health check (project/db/backends/health.py): no round trip for a
healthy connection, yet a connection the server ended is replaced before a request's first
query, on the test database of the real PostgreSQL.

Requests go through Django's WSGI handler on the test's thread, not the test client: the
client disconnects the request_started hook that schedules the health check.
"""

import io
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import psycopg
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection

from project.db.backends.health import has_pending_input

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE_S = 10.0


def wsgi_get(path: str) -> int:
    """The status of a GET through the full WSGI stack, as gunicorn would run it."""
    statuses: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return lambda data: None

    response = WSGIHandler()(environ, start_response)
    try:
        b"".join(response)
    finally:
        response.close()  # request_finished, as a WSGI server does
    return int(statuses[0].split()[0])


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE_S:.0f} s: {what}")
        time.sleep(0.01)


@pytest.fixture
def other_session() -> Iterator[psycopg.Connection[Any]]:
    """A second session on the test database, outside Django."""
    params = connection.settings_dict
    with psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"],
        password=params["PASSWORD"] or None,
        host=params["HOST"],
        port=params["PORT"] or None,
        autocommit=True,
    ) as session:
        yield session


def _pending() -> bool:
    return has_pending_input(connection.connection.fileno())


def test_a_healthy_connection_is_checked_without_a_round_trip() -> None:
    connection.ensure_connection()
    with mock.patch.object(connection.connection, "cursor", side_effect=AssertionError("a round trip")):
        assert connection.is_usable()


def test_a_connection_the_server_ended_is_replaced_before_the_next_request(other_session) -> None:
    # Readiness reads the database on every request (an API read may come from the cache).
    path = "/readyz"
    assert wsgi_get(path) == 200
    backend_pid = connection.connection.info.backend_pid

    other_session.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))
    wait_for(_pending, "the terminated backend's notice reaches the socket")

    assert wsgi_get(path) == 200
    assert connection.connection.info.backend_pid != backend_pid
    assert wsgi_get(path) == 200


def test_a_harmless_message_waiting_costs_a_select_1_not_the_connection(other_session) -> None:
    """A notification (like a NOTICE or a ParameterStatus after a reload) makes the socket
    readable: Django's SELECT 1 then reads past it and the connection is kept."""
    connection.ensure_connection()
    backend_pid = connection.connection.info.backend_pid
    connection.connection.execute("LISTEN postline_health_check")
    other_session.execute("NOTIFY postline_health_check")
    wait_for(_pending, "the notification reaches the socket")

    assert connection.is_usable()
    assert not _pending()
    assert connection.connection.info.backend_pid == backend_pid
    connection.connection.execute("UNLISTEN postline_health_check")
