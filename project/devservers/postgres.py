"""Private PostgreSQL clusters: initdb and pg_ctl from the system's PostgreSQL 15, in a directory
of the caller's, on a free port of 127.0.0.1.

For tests that stop, restart or break a server, or build a replica of it: never the machine's
own server, whose data directory is not theirs. `stop()` stops this data directory's
postmaster only.

PostgreSQL (and PgBouncer) refuse to run as root, so as root every command runs as the
`postgres` system user through `runuser`. runuser takes on that user's whole identity: its
uid, its primary group and its supplementary groups, and its HOME. subprocess's `user=`
changes the uid alone and leaves the server running with root's groups (gid 0), and it only
fits the calls that go through subprocess, where runuser wraps any command line, a long-lived
Popen (PgBouncer) as well as pg_ctl.
"""

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString

import psutil  # pgserver's own dependency, as in embedded.py
import psycopg

from project.devservers.live import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SERVICE_USER = "postgres"
READY_DEADLINE_S = 30.0
COMMAND_TIMEOUT_S = 120.0


def as_service_user(command: list[str]) -> list[str]:
    """The command as the `postgres` user when we are root, else as is."""
    return ["runuser", "-u", SERVICE_USER, "--", *command] if os.geteuid() == 0 else command


def give_to_service_user(path: Path) -> None:
    """Make `path` the `postgres` user's when we are root (it writes there as that user)."""
    if os.geteuid() == 0:
        shutil.chown(path, SERVICE_USER, SERVICE_USER)


def postgres_available() -> bool:
    """The server binaries are installed, and as root runuser too."""
    return (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or shutil.which("runuser") is not None)


def run_as_service_user(command: list[str]) -> subprocess.CompletedProcess[str]:
    """A PostgreSQL command (initdb, pg_ctl, pg_basebackup...) as the service user, to its end; its
    output goes into the error when it fails."""
    try:
        return subprocess.run(  # noqa: S603  -- fixed binaries of PG_BIN, no shell
            as_service_user(command), check=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"{' '.join(command)} failed ({error.returncode}):\n{error.stdout}{error.stderr}") from error


@dataclass
class Cluster:
    """One data directory and the port its server listens on (127.0.0.1, sockets in the data directory)."""

    data_dir: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def configure(self, settings: str = "") -> None:
        """Append this cluster's address and `settings` (postgresql.conf lines) to its postgresql.conf."""
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.data_dir}'\n{settings}"
            )

    def running(self) -> bool:
        """This data directory's postmaster runs (its pid file names a live process)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        return psutil.pid_exists(pid)

    def start(self) -> None:
        """Returns once the server accepts connections."""
        log = self.data_dir / "server.log"
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(log)]
        run_as_service_user([*pg_ctl, "-w", "-t", str(int(READY_DEADLINE_S)), "start"])
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Stop this data directory's server; a no-op when it does not run. `fast` ends every session
        (in-flight queries fail), as a restart by an operator does; `immediate` does not even
        checkpoint."""
        if not self.running():
            return
        result = subprocess.run(  # noqa: S603  -- a fixed binary of PG_BIN, no shell
            as_service_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"]),
            check=False,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        if result.returncode and self.running():
            raise RuntimeError(f"pg_ctl stop failed ({result.returncode}):\n{result.stdout}{result.stderr}")

    def query(
        self, sql: LiteralString, params: Sequence[object] = (), *, database: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        """Rows of one statement (none for a command), in autocommit, on a connection of the caller's own."""
        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=3) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def init_cluster(data_dir: Path, *, settings: str = "") -> Cluster:
    """A new cluster in `data_dir` (trust authentication, superuser `postgres`, UTF8, no locale) on
    a free port, not started. As root, `data_dir`'s parent is given to the `postgres` user."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    give_to_service_user(data_dir.parent)
    cluster = Cluster(data_dir=data_dir, port=free_port())
    run_as_service_user(
        [
            *(str(PG_BIN / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust"),
            *("--no-locale", "-E", "UTF8", "--no-sync"),
        ]
    )
    cluster.configure(settings)
    return cluster


@contextmanager
def private_cluster(*, settings: str = "", prefix: str = "pl-pg-") -> Iterator[Cluster]:
    """A new cluster in a temporary directory, started; stopped and removed on the way out."""
    # Under /tmp, not $TMPDIR: the `postgres` user must reach it, and the socket path must stay
    # under AF_UNIX's 108 bytes.
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # nosec B108
    cluster: Cluster | None = None
    try:
        cluster = init_cluster(root / "data", settings=settings)
        cluster.start()
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
