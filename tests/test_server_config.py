"""gunicorn's part of the request path, read the way gunicorn loads project/gunicorn.conf.py.

Requests are parsed by gunicorn_h1c's C parser, not the pure-Python one. The workers share the
master's listening socket (no SO_REUSEPORT): a socket of each worker's own would die with the
worker and reset the connections queued on it (tests/test_faults.py, docs/performance.md); they
still share a burst of keep-alive connections evenly (project/server/balance.py).
"""

import asyncio
import gc
import os
import runpy
import socket
import sys
import time
from pathlib import Path

import pytest
from gunicorn.config import Config
from gunicorn.http import message

from tests.live_server import BASE_DIR, running_gunicorn


def gunicorn_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server_mode: str) -> Config:
    monkeypatch.setenv("SERVER_MODE", server_mode)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = Config()
    # What gunicorn's Application.load_config_from_file does: every setting the file names.
    for name, value in runpy.run_path(str(BASE_DIR / "project" / "gunicorn.conf.py")).items():
        if name in config.settings:
            config.set(name, value)
    return config


@pytest.mark.parametrize("server_mode", ["wsgi", "asgi"])
def test_workers_share_the_masters_listening_socket(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server_mode: str
) -> None:
    assert gunicorn_config(monkeypatch, tmp_path, server_mode).reuse_port is False


def test_requests_are_parsed_by_the_c_parser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = gunicorn_config(monkeypatch, tmp_path, "wsgi")
    assert config.http_parser == "auto"  # the pure-Python parser stays the fallback
    assert message._check_fast_parser(config) is True


def established_connections(worker_pid: int, port: int) -> int:
    """Sockets of one process connected to `port` on this side (its accepted connections)."""
    inodes = set()
    for descriptor in Path(f"/proc/{worker_pid}/fd").iterdir():
        target = os.readlink(descriptor) if descriptor.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for line in Path(f"/proc/{worker_pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
        count += local_port == port and state == ESTABLISHED and inode in inodes
    return count


ESTABLISHED = "01"


def worker_pids(master_pid: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()]


def wait_until_every_worker_serves(master_pid: int, workers: int = 2, deadline_s: float = 30.0) -> None:
    """/readyz answered means one worker serves; a worker still loading the application is not
    counted yet (project/server/balance.py), so a burst then goes to the others. A worker has
    loaded the application once orjson's library is mapped (the master never imports it)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        pids = worker_pids(master_pid)
        if len(pids) == workers and all("orjson" in Path(f"/proc/{pid}/maps").read_text() for pid in pids):
            time.sleep(0.2)  # from the application loaded to the worker counted: its run() begins
            return
        time.sleep(0.05)
    raise AssertionError(f"{workers} workers did not load the application within {deadline_s} s")


def answered_connections(port: int, count: int) -> list[socket.socket]:
    """`count` connections opened at once, each answered one request and kept open."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    for sock in sockets:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    for sock in sockets:
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    return sockets


def held_by_each_worker(master_pid: int, port: int) -> list[int]:
    return sorted(established_connections(pid, port) for pid in worker_pids(master_pid))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("server_mode", ["wsgi", "asgi"])
def test_a_burst_of_keep_alive_connections_is_shared_by_the_workers(tmp_path: Path, server_mode: str) -> None:
    """32 connections opened at once, as a load balancer's pool or wrk opens them, and kept:
    each of the two workers holds half (the stock gthread and uvicorn workers often take all of
    them into one)."""
    with running_gunicorn(tmp_path, env={"SERVER_MODE": server_mode}) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        wait_until_every_worker_serves(server.process.pid)
        sockets = answered_connections(port, 32)
        try:
            held = held_by_each_worker(server.process.pid, port)
        finally:
            for sock in sockets:
                sock.close()
    assert sum(held) == 32
    assert held[-1] - held[0] <= 2, held


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("server_mode", ["wsgi", "asgi"])
def test_pairs_of_connections_opened_one_after_another_are_split(tmp_path: Path, server_mode: str) -> None:
    """A client reconnecting right after closing (wrk's next run, a pool recycling its
    connections): each worker has counted its closed connections by then, so a pair is split
    again (a count published late let one worker take every pair)."""
    with running_gunicorn(tmp_path, env={"SERVER_MODE": server_mode}) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        wait_until_every_worker_serves(server.process.pid)
        for _ in range(5):
            sockets = answered_connections(port, 2)
            held = held_by_each_worker(server.process.pid, port)
            for sock in sockets:
                sock.close()
            assert held == [1, 1]
            time.sleep(0.05)


def test_each_worker_freezes_what_it_loaded_and_shortens_the_gil_switch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """gunicorn calls post_worker_init in each worker once the application is loaded."""
    hook = gunicorn_config(monkeypatch, tmp_path, "wsgi").post_worker_init
    switch_interval = sys.getswitchinterval()
    try:
        hook(None)
        assert gc.get_freeze_count() > 0
        assert sys.getswitchinterval() == pytest.approx(0.001)
    finally:
        gc.unfreeze()
        sys.setswitchinterval(switch_interval)


def test_writes_of_one_turn_of_the_loop_leave_in_one_send() -> None:
    """What uvicorn writes for one response (status line and headers, then body) is held until
    the turn of the loop ends and sent together; a close sends what is held first."""
    from project.server.asgi_worker import _OneWritePerTurn  # noqa: PLC0415

    async def exchange() -> tuple[bool, bytes, bytes]:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
        joined = _OneWritePerTurn(transport)
        joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
        joined.write(b"body")
        try:
            theirs.recv(1024)
            held = False
        except BlockingIOError:
            held = True  # nothing sent within the turn
        await asyncio.sleep(0)
        first = theirs.recv(1024)
        joined.write(b"last")
        joined.close()
        await asyncio.sleep(0.01)
        last = theirs.recv(1024)
        theirs.close()
        return held, first, last

    held, first, last = asyncio.run(exchange())
    assert held
    assert first == b"HTTP/1.1 200 OK\r\n\r\nbody"
    assert last == b"last"


@pytest.mark.django_db(transaction=True)
def test_an_asgi_worker_sends_each_response_in_one_write(tmp_path: Path) -> None:
    """uvicorn writes a response's status line and headers, then its body; the worker's transport
    sends what one turn of the loop wrote in one write (project/server/asgi_worker.py), so one
    read has it all: on keep-alive, and before the close a `Connection: close` asks for."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    with running_gunicorn(tmp_path, env={"SERVER_MODE": "asgi"}) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for _ in range(3):
                sock.sendall(request + b"\r\n")
                head, _, body = sock.recv(65536).partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                assert len(body) == length > 0
            sock.sendall(request + b"Connection: close\r\n\r\n")
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert body
