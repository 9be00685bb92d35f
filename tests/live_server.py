"""A real gunicorn on 127.0.0.1 for tests that need other processes, on the test session's servers.

project.devservers.live starts it and always stops it; this module points it at the test
database (pytest-django's, so use it from `transaction=True` tests, whose commits the server
can see) and the test session's Redis. It is stopped by the test that started it, never
anything else.
"""

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import connection, connections

from project.devservers.live import Server, live_gunicorn

BASE_DIR = Path(__file__).resolve().parent.parent
STARTUP_DEADLINE_S = 30.0
# What project.settings adds to a URL's libpq options, from variables a test may set.
SETTINGS_OPTIONS = frozenset({"connect_timeout", "options"})


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for a Django database entry: its host lists as `h1:p1,h2:p2`, a socket
    directory in ?host=, and its libpq options (target_session_attrs...) as the query."""
    user = quote(settings_dict["USER"] or "", safe="")
    password = quote(settings_dict["PASSWORD"] or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict["HOST"] or ""
    name = quote(settings_dict["NAME"], safe="")
    query = {  # the URL's own options: not those the server's settings add (SETTINGS_OPTIONS)
        key: value
        for key, value in settings_dict["OPTIONS"].items()
        if key not in SETTINGS_OPTIONS and isinstance(value, str | int) and not isinstance(value, bool)
    }
    if host.startswith("/"):
        port = f":{settings_dict['PORT']}" if settings_dict["PORT"] else ""
        return f"postgres://{credentials}{port}/{name}?{urlencode({'host': host, **query})}"
    hosts = host.split(",")
    ports = str(settings_dict["PORT"] or "").split(",")
    ports = ports * len(hosts) if len(ports) == 1 else ports
    addresses = ",".join(
        (f"[{each}]" if ":" in each else each) + (f":{port}" if port else "")
        for each, port in zip(hosts, ports, strict=False)
    )
    return f"postgres://{credentials}{addresses}/{name}" + (f"?{urlencode(query)}" if query else "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect instead of following it (to https://, where nothing listens)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def request(
    url: str, *, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection (so gunicorn may hand it to any worker)."""
    prepared = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with _opener.open(prepared, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def server_environment(tmp_path: Path) -> dict[str, str]:
    """The test session's environment, pointed at the test database and its replicas."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "GUNICORN_CMD_ARGS"))}
    env.update(
        {
            "DATABASE_URL": database_url(connection.settings_dict),
            # Replica aliases mirror the test database under test (settings.DATABASE_REPLICAS).
            "DATABASE_REPLICA_URLS": ",".join(
                database_url(connections[alias].settings_dict) for alias in settings.DATABASE_REPLICAS
            ),
            "REDIS_URL": str(settings.CACHES["default"]["LOCATION"]),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
            "WEB_CONCURRENCY": "2",
            "CACHE_KEY_PREFIX": str(settings.CACHES["default"].get("KEY_PREFIX", "")),
        }
    )
    return env


@contextmanager
def running_gunicorn(
    tmp_path: Path, *, command: list[str] | None = None, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """gunicorn with two workers, ready (/readyz) to serve; `env` adds to or overrides the defaults."""
    env = env or {}
    full_env = {**server_environment(tmp_path), **env}
    if "DATABASE_URL" in env and "DATABASE_REPLICA_URLS" not in env:
        # Another database than the test database has none of its replicas.
        full_env["DATABASE_REPLICA_URLS"] = ""
    with live_gunicorn(
        full_env,
        log=tmp_path / "gunicorn.log",
        ready_path="/readyz",
        deadline_s=STARTUP_DEADLINE_S,
        command=command,
    ) as server:
        yield server


def run_python(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python <args>` from the repository root with the test session's environment plus `env`
    (and without SECRET_KEY and DEBUG, so a test decides them), e.g. to see how settings react
    to a variable."""
    full_env = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DEBUG"}}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, *args], cwd=BASE_DIR, env=full_env, capture_output=True, text=True, timeout=60, check=False
    )
