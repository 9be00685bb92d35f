"""A streaming pair for tests/test_replicas.py: a primary that streams its WAL, and a hot standby of it.

Both are private clusters (project.devservers.postgres): data directories under the test's
own directory, free ports of 127.0.0.1, never the machine's own server.
"""

from pathlib import Path

from project.devservers.live import free_port
from project.devservers.postgres import PG_BIN, Cluster, init_cluster, run_as_service_user


def init_primary(root: Path) -> Cluster:
    """A new primary that streams its WAL to replicas (trust for replication from 127.0.0.1)."""
    cluster = init_cluster(
        root / "primary", settings="wal_level = replica\nmax_wal_senders = 4\nfsync = off\nsynchronous_commit = off\n"
    )
    with (cluster.data_dir / "pg_hba.conf").open("a") as hba:
        hba.write("host replication all 127.0.0.1/32 trust\n")
    return cluster


def init_replica(primary: Cluster, root: Path, *, apply_delay_ms: int = 0) -> Cluster:
    """A streaming hot standby of `primary` from `pg_basebackup -R`, optionally applying WAL late."""
    cluster = Cluster(data_dir=root / "replica", port=free_port())
    run_as_service_user(
        [
            *(str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(cluster.data_dir), "-R", "-X", "stream"),
            # An immediate checkpoint, not one spread over minutes.
            "--checkpoint=fast",
        ]
    )
    cluster.configure(f"hot_standby = on\nrecovery_min_apply_delay = '{apply_delay_ms}ms'\n")
    return cluster
