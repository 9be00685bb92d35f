"""Live servers on 127.0.0.1: a free port, a process that is always stopped, a ready gunicorn.

The one way tests, `make fuzz` and the load tools (loadtests/) start a gunicorn of their own
(each caller only decides the environment), and the way the load tools start their other
helper processes. Every process runs in a process group of its own, so that stopping it stops
what it forked (gunicorn's workers), and nothing else. Nothing here reads Django settings: the
server reads them in its own process.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO_DIR = Path(__file__).resolve().parents[2]
# The project's gunicorn configuration, from this virtualenv (gunicorn sits beside its python).
GUNICORN_COMMAND = [str(Path(sys.executable).with_name("gunicorn")), "-c", "project/gunicorn.conf.py"]
STOP_DEADLINE_S = 30.0


class NotReadyError(RuntimeError):
    """A started process exited, or did not answer 200 at its ready URL within the deadline."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answer(url: str) -> tuple[int, str]:
    """Status and start of the body of one GET, on a new connection, not following redirects."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=2)
    try:
        connection.request("GET", f"{parts.path or '/'}{'?' + parts.query if parts.query else ''}")
        response = connection.getresponse()
        return response.status, response.read(500).decode(errors="replace")
    finally:
        connection.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, deadline_s: float) -> None:
    """Poll `url` until it answers 200; NotReadyError (with the process's log) if it exits or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    last: tuple[int, str] = (0, "no answer yet")
    while time.monotonic() < deadline and process.poll() is None:
        try:
            last = _answer(url)
        except (OSError, http.client.HTTPException) as error:  # not listening yet
            last = (0, str(error))
        if last[0] == 200:
            return
        time.sleep(0.1)
    exited = process.poll()
    reason = f"the process exited with {exited}" if exited is not None else f"no 200 within {deadline_s:.0f} s"
    raise NotReadyError(f"{url}: {reason}; last answer {last}\n{log.read_text(errors='replace')}")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group, SIGKILL if it has not ended within STOP_DEADLINE_S."""
    with suppress(ProcessLookupError):  # the group has ended already
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextmanager
def running_process(
    command: list[str],
    *,
    env: dict[str, str],
    log: Path,
    ready_url: str | None = None,
    deadline_s: float = 60.0,
    cwd: Path = REPO_DIR,
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` in a process group of its own, its output appended to `log`; with `ready_url`,
    once that answers 200. The whole group is stopped on the way out, whatever happened."""
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603  -- an argument list chosen by the caller, no shell
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        if ready_url is not None:
            _wait_ready(ready_url, process, log, deadline_s)
        yield process
    finally:
        _stop_group(process)


@dataclass(frozen=True)
class Server:
    """A running gunicorn: where it answers, where it logs, and its master process."""

    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def live_gunicorn(
    env: dict[str, str],
    *,
    log: Path,
    ready_path: str = "/healthz",
    deadline_s: float = 60.0,
    command: list[str] | None = None,
) -> Iterator[Server]:
    """gunicorn with the project's configuration (or `command`) and exactly `env`, on a free port of
    127.0.0.1 (BIND is set here, whatever `env` says), once `ready_path` answers 200.

    `ready_path` is /healthz where the process answering is enough, /readyz where its database
    and Redis must answer too.
    """
    bind = f"127.0.0.1:{free_port()}"
    base_url = f"http://{bind}"
    with running_process(
        command or GUNICORN_COMMAND,
        env={**env, "BIND": bind},
        log=log,
        ready_url=f"{base_url}{ready_path}",
        deadline_s=deadline_s,
    ) as process:
        yield Server(base_url=base_url, log_path=log, process=process)
