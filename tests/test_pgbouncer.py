"""Postline behind a real PgBouncer in transaction pooling mode (Debian's `pgbouncer`).

Each test starts its own PgBouncer on a free port of 127.0.0.1, with its own ini in a tmp
dir, in front of the test database. It hands out server connections round-robin
(server_round_robin) from a pool warmed to several connections, so that consecutive
transactions of one client land on different server connections, as they do under load.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection

from project.devservers.live import free_port
from project.devservers.postgres import as_service_user, give_to_service_user
from tests.factories import PostFactory, UserFactory
from tests.live_server import request, run_python, running_gunicorn

PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
WARM_SERVER_CONNECTIONS = 3
READY_DEADLINE_S = 15.0

pytestmark = [
    pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed (make ci-tools installs it)"),
    pytest.mark.skipif(
        str(connection.settings_dict["HOST"]).startswith("/"),
        reason="the test database is on a private Unix socket (embedded server), which PgBouncer's user cannot "
        "open: set DATABASE_URL to a TCP server",
    ),
    pytest.mark.django_db(transaction=True),
]

ITERATE_POSTS = (
    "from posts.models import Post; "
    "print('iterated', sum(1 for _ in Post.objects.order_by('id').iterator(chunk_size=2)))"
)


@contextmanager
def running_pgbouncer(*, ignore_options: bool = False) -> Iterator[str]:
    """A PgBouncer for the test database; yields the DATABASE_URL that goes through it.

    `ignore_options` drops the `options` startup parameter instead of refusing the client, a
    common way to make an unprepared application connect at all.
    """
    settings = connection.settings_dict
    directory = Path(tempfile.mkdtemp(prefix="pl-pgbouncer-", dir="/tmp"))
    give_to_service_user(directory)
    port = free_port()
    (directory / "users.txt").write_text(f'"{settings["USER"]}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"postline = host={settings['HOST'] or '127.0.0.1'} port={settings['PORT'] or 5432} "
        f"dbname={settings['NAME']} user={settings['USER']}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {directory / 'users.txt'}\nadmin_users = {settings['USER']}\n"
        "pool_mode = transaction\nserver_round_robin = 1\ndefault_pool_size = 8\n"
        + ("ignore_startup_parameters = options\n" if ignore_options else "")
        + f"logfile = {directory / 'pgbouncer.log'}\n"
    )
    for path in directory.iterdir():
        give_to_service_user(path)
    process = subprocess.Popen(
        as_service_user([str(PGBOUNCER), str(directory / "pgbouncer.ini")]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"postgres://{settings['USER']}@127.0.0.1:{port}/postline"
    try:
        warm_pool(url, directory)
        yield url
    finally:
        # Only the PgBouncer this test started: its server connections to the test database close with it.
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
        shutil.rmtree(directory, ignore_errors=True)


def warm_pool(url: str, directory: Path) -> None:
    """Hold several transactions open at once, so that the pool keeps that many server connections."""
    deadline = time.monotonic() + READY_DEADLINE_S
    while True:
        try:
            clients = [psycopg.connect(url, connect_timeout=2) for _ in range(WARM_SERVER_CONNECTIONS)]
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                log = directory / "pgbouncer.log"
                pytest.fail(f"PgBouncer did not accept connections:\n{log.read_text() if log.exists() else ''}")
            time.sleep(0.1)
    for client in clients:
        client.execute("SELECT 1")
    # Committed, not abandoned: a server connection left inside a transaction is closed.
    for client in clients:
        client.commit()
        client.close()


def api(base_url: str, path: str, *, token: str = "", body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Token {token}"} if token else {})}
    status, _, raw = request(
        f"{base_url}{path}",
        method="POST" if body is not None else "GET",
        body=json.dumps(body).encode() if body is not None else None,
        headers=headers,
    )
    return status, json.loads(raw) if raw else None


def test_without_the_setting_pgbouncer_refuses_the_connection_options() -> None:
    with running_pgbouncer() as url:
        result = run_python("manage.py", "shell", "-c", ITERATE_POSTS, env={"DATABASE_URL": url})
    assert result.returncode != 0
    assert "unsupported startup parameter: options" in result.stderr
    print(f"\nwithout DATABASE_PGBOUNCER: {result.stderr.strip().splitlines()[-1]}")


def test_without_the_setting_a_server_side_cursor_is_lost_between_transactions() -> None:
    PostFactory.create_batch(5)
    with running_pgbouncer(ignore_options=True) as url:
        result = run_python("manage.py", "shell", "-c", ITERATE_POSTS, env={"DATABASE_URL": url})
    assert result.returncode != 0
    assert "does not exist" in result.stderr, result.stderr
    print(f"\nwithout DATABASE_PGBOUNCER: {result.stderr.strip().splitlines()[-1]}")


@pytest.mark.parametrize("server_mode", ["wsgi", "asgi"])
def test_with_the_setting_the_api_and_iterators_work_through_pgbouncer(server_mode: str, tmp_path: Path) -> None:
    PostFactory.create_batch(7, author=UserFactory.create())
    with running_pgbouncer() as url:
        env = {"DATABASE_URL": url, "DATABASE_PGBOUNCER": "true", "SERVER_MODE": server_mode}
        iterated = run_python("manage.py", "shell", "-c", ITERATE_POSTS, env=env)
        assert iterated.returncode == 0, iterated.stderr
        assert "iterated 7" in iterated.stdout

        with running_gunicorn(tmp_path, env=env) as server:
            base = server.base_url
            credentials = {"email": f"bouncer-{server_mode}@example.com", "password": "correct-horse-battery"}
            assert api(base, "/api/users/", body={**credentials, "name": "Bouncer"})[0] == 201
            status, token = api(base, "/api/auth/token/", body=credentials)
            assert status == 200, token
            created = [
                api(base, "/api/posts/", token=token["token"], body={"title": f"p{n}", "body": "via pgbouncer"})
                for n in range(5)
            ]
            assert [status for status, _ in created] == [201] * 5
            for _, post in created:
                status, detail = api(base, f"/api/posts/{post['id']}/")
                assert (status, detail["title"]) == (200, post["title"])

            seen: list[int] = []
            page_url = "/api/posts/?page_size=3"
            while page_url:
                status, page = api(base, page_url)
                assert status == 200, page
                seen += [row["id"] for row in page["results"]]
                page_url = page["next"].removeprefix(base) if page["next"] else ""
            assert len(seen) == len(set(seen)) == 12
            assert "Traceback" not in server.log()
