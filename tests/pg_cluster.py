"""PostgreSQL servers a test starts itself, in its own directory on a free port of 127.0.0.1.

Never the machine's own server: every server here has its data directory under the test's
tmp_path, and `stop()` stops that data directory's postmaster only. PostgreSQL (and PgBouncer)
refuse to run as root, so as root the commands run as the `postgres` system user.
"""

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import LiteralString

import psycopg

from tests.live_server import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
READY_DEADLINE_S = 30.0


def as_service_user(command: list[str]) -> list[str]:
    """The command as the `postgres` user when we are root, else as is."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def give_to_service_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def postgres_available() -> bool:
    return (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or shutil.which("runuser") is not None)


@dataclass
class Cluster:
    data_dir: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        subprocess.run(
            as_service_user(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"), "start"]
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_until_accepting()

    def stop(self, mode: str = "fast") -> None:
        """Stop this data directory's server (no-op when it is not running)."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        subprocess.run(
            as_service_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"]),
            check=False,
            capture_output=True,
            timeout=60,
        )

    def wait_until_accepting(self) -> None:
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def query(
        self, sql: LiteralString, params: tuple[object, ...] = (), *, database: str = "postgres"
    ) -> list[tuple[object, ...]]:
        """Rows of one statement (none for a command), in autocommit."""
        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=3) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _configure(cluster: Cluster, settings: str) -> None:
    with (cluster.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nport = {cluster.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{cluster.data_dir}'\n{settings}"
        )


def init_primary(root: Path) -> Cluster:
    """A new primary that streams its WAL to replicas (trust for replication from 127.0.0.1)."""
    root.mkdir(parents=True, exist_ok=True)
    give_to_service_user(root)
    cluster = Cluster(data_dir=root / "primary", port=free_port())
    subprocess.run(
        as_service_user([str(PG_BIN / "initdb"), "-D", str(cluster.data_dir), "-U", "postgres", "-A", "trust"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    _configure(cluster, "wal_level = replica\nmax_wal_senders = 4\nfsync = off\nsynchronous_commit = off\n")
    with (cluster.data_dir / "pg_hba.conf").open("a") as hba:
        hba.write("host replication all 127.0.0.1/32 trust\n")
    return cluster


def init_replica(primary: Cluster, root: Path, *, apply_delay_ms: int = 0) -> Cluster:
    """A streaming hot standby of `primary` from `pg_basebackup -R`, optionally applying WAL late."""
    cluster = Cluster(data_dir=root / "replica", port=free_port())
    subprocess.run(
        as_service_user(
            [
                str(PG_BIN / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(cluster.data_dir),
                "-R",
                "-X",
                "stream",
                # An immediate checkpoint, not one spread over minutes.
                "--checkpoint=fast",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    _configure(cluster, f"hot_standby = on\nrecovery_min_apply_delay = '{apply_delay_ms}ms'\n")
    return cluster
