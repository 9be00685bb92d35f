"""A Patroni-managed PostgreSQL cluster on 127.0.0.1 for tests/test_failover.py: one etcd and
NODES PostgreSQL 15 nodes, each run by its own Patroni, in synchronous mode.

Everything lives in a directory of the test's own and listens on free ports: never the
machine's PostgreSQL. Patroni runs as the `postgres` user (PostgreSQL refuses root), etcd as
whoever runs the tests. Debian's packages: `patroni` (3.0) and `etcd-server` (3.4).

The timing settings are the test's, not production's: Patroni checks every second (loop_wait
1) and a leader key lives 10 s, so that a failover takes seconds, not the defaults' half
minute. `primary_start_timeout: 0` makes Patroni fail over when the primary's postmaster dies
rather than restart it in place (which keeps the same primary, and is what the defaults do
for 300 s): the fault this cluster exists to show is a primary that is gone.
"""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from project.devservers.live import free_port
from project.devservers.postgres import PG_BIN, Cluster, as_service_user, give_to_service_user, postgres_available

PATRONI = shutil.which("patroni") or "/usr/bin/patroni"
PATRONICTL = shutil.which("patronictl") or "/usr/bin/patronictl"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SCOPE = "postline"
NODES = 3
READY_DEADLINE_S = 90.0


def missing_tools() -> str | None:
    """Why the cluster cannot run here, or None."""
    if not postgres_available():
        return "PostgreSQL 15 server binaries (initdb) are not installed"
    absent = [tool for tool in (PATRONI, PATRONICTL, ETCD) if not Path(tool).exists()]
    if absent:
        return f"{', '.join(absent)} not installed (Debian: apt-get install patroni etcd-server)"
    return None


@dataclass
class Node:
    """One PostgreSQL node and the Patroni that runs it."""

    name: str
    root: Path
    pg_port: int
    api_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.root / "patroni.yml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def log(self) -> str:
        path = self.root / "patroni.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def postgres(self) -> Cluster:
        """The node's server, for project.devservers.postgres's url() and query()."""
        return Cluster(data_dir=self.data_dir, port=self.pg_port)


@dataclass
class PatroniCluster:
    root: Path
    etcd_port: int
    nodes: list[Node]
    etcd: subprocess.Popen[bytes] | None = None
    _logs: list[Any] = field(default_factory=list)

    def url(self, database: str, *, target_session_attrs: str = "read-write") -> str:
        """libpq's multi-host URL of every node: it connects to the one that matches."""
        hosts = ",".join(f"127.0.0.1:{node.pg_port}" for node in self.nodes)
        return f"postgres://postgres@{hosts}/{database}?target_session_attrs={target_session_attrs}"

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def members(self) -> list[dict[str, Any]]:
        """Patroni's view of the cluster (GET /cluster of any node's REST API that answers)."""
        for node in self.nodes:
            with suppress(OSError, ValueError):
                request = urllib.request.urlopen(f"http://127.0.0.1:{node.api_port}/cluster", timeout=2)
                with request as response:
                    return list(json.load(response)["members"])
        return []

    def leader(self) -> str | None:
        """The member that holds the leader key and runs, as Patroni reports it."""
        for member in self.members():
            if member["role"] == "leader" and member["state"] == "running":
                return str(member["name"])
        return None

    def sync_standby(self) -> str | None:
        """The standby every commit waits for: in synchronous mode, the only one Patroni promotes."""
        return next((str(member["name"]) for member in self.members() if member["role"] == "sync_standby"), None)

    def whole(self) -> bool:
        """Every node runs: one leader, the others replicas on its timeline with no lag, one of
        them the synchronous standby that every commit waits for."""
        members = self.members()
        leader = [member for member in members if member["role"] == "leader" and member["state"] == "running"]
        replicas = [member for member in members if member["role"] != "leader"]
        return (
            len(members) == NODES
            and len(leader) == 1
            and any(member["role"] == "sync_standby" for member in replicas)
            and all(
                member["state"] in {"running", "streaming"}
                and member.get("timeline") == leader[0].get("timeline")
                and member.get("lag") == 0
                for member in replicas
            )
        )

    def wait_for(self, condition: Callable[[], Any], *, what: str, deadline_s: float = READY_DEADLINE_S) -> Any:
        deadline = time.monotonic() + deadline_s
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not within {deadline_s:.0f} s: {what}\n{self.diagnosis()}")
            time.sleep(0.2)

    def switchover(self, leader: str, candidate: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            as_service_user(
                [
                    *(PATRONICTL, "-c", str(self.node(leader).config_path), "switchover", SCOPE),
                    *("--leader", leader, "--candidate", candidate, "--force"),
                ]
            ),
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def crash_primary(self, name: str) -> None:
        """The primary dies with WAL its standbys never received, as when its machine dies
        mid-stream: its WAL senders are frozen (SIGSTOP), it commits a transaction locally
        (synchronous_commit = local), then its postmaster and the frozen senders are SIGKILLed.
        Its Patroni lives on; the diverged history makes the way back need pg_rewind."""
        node = self.node(name)
        senders = [row[0] for row in node.postgres.query("SELECT pid FROM pg_stat_replication")]
        for pid in senders:
            os.kill(pid, signal.SIGSTOP)
        with psycopg.connect(node.postgres.url(), connect_timeout=3) as connection:
            connection.execute("SET LOCAL synchronous_commit = local")
            connection.execute("CREATE TABLE IF NOT EXISTS never_replicated (at timestamptz)")
            connection.execute("INSERT INTO never_replicated VALUES (now())")
        pid = node.postmaster_pid()
        assert pid is not None, f"{name} runs no postmaster"
        for each in [pid, *senders]:
            os.kill(each, signal.SIGKILL)

    def diagnosis(self) -> str:
        tails = [f"--- {node.name} (patroni.log, last lines)\n{node.log()[-2500:]}" for node in self.nodes]
        return f"members: {json.dumps(self.members(), indent=1)}\n" + "\n".join(tails)


def _node_config(cluster: PatroniCluster, node: Node) -> dict[str, Any]:
    local = "127.0.0.1"
    return {
        "scope": SCOPE,
        "name": node.name,
        "log": {"level": "INFO", "dir": str(node.root), "file_num": 1},
        "restapi": {"listen": f"{local}:{node.api_port}", "connect_address": f"{local}:{node.api_port}"},
        "etcd3": {"hosts": [f"{local}:{cluster.etcd_port}"]},
        "bootstrap": {
            "dcs": {
                "ttl": 10,
                "loop_wait": 1,
                "retry_timeout": 3,
                "maximum_lag_on_failover": 1048576,
                "synchronous_mode": True,
                "primary_start_timeout": 0,
                "postgresql": {
                    "use_pg_rewind": True,
                    "use_slots": True,
                    "parameters": {
                        "wal_level": "replica",
                        "hot_standby": "on",
                        "wal_log_hints": "on",
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "wal_keep_size": "64MB",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, "no-locale", "no-sync"],
            "pg_hba": [
                f"host replication postgres {local}/32 trust",
                f"host all all {local}/32 trust",
                "local all all trust",
            ],
        },
        "postgresql": {
            "listen": f"{local}:{node.pg_port}",
            "connect_address": f"{local}:{node.pg_port}",
            "data_dir": str(node.data_dir),
            "bin_dir": str(PG_BIN),
            "pgpass": str(node.root / "pgpass"),
            "authentication": {
                "superuser": {"username": "postgres"},
                "replication": {"username": "postgres"},
                "rewind": {"username": "postgres"},
            },
            "parameters": {"unix_socket_directories": str(node.root), "shared_buffers": "32MB"},
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }


@dataclass
class HAProxy:
    """HAProxy in front of the cluster, as Patroni's documentation sets it up: one port for the
    primary, one for the replicas, each node checked through its Patroni REST API (GET /primary,
    GET /replica answer 200 on the matching role), sessions to a node marked down cut at once."""

    primary_port: int
    replica_port: int

    def url(self, database: str, *, replicas: bool = False) -> str:
        return f"postgres://postgres@127.0.0.1:{self.replica_port if replicas else self.primary_port}/{database}"


# Patroni's documented HAProxy configuration, with checks every 500 ms (its example: 3 s).
_HAPROXY_CONFIG = """global
    maxconn 400
defaults
    mode tcp
    retries 2
    timeout connect 3s
    timeout client 30m
    timeout server 30m
    timeout check 1s
"""


def _haproxy_section(name: str, port: int, check: str, nodes: list[Node]) -> str:
    servers = "".join(
        f"    server {node.name} 127.0.0.1:{node.pg_port} maxconn 100 check port {node.api_port}\n" for node in nodes
    )
    return (
        f"listen {name}\n    bind 127.0.0.1:{port}\n    option httpchk GET /{check}\n"
        f"    http-check expect status 200\n"
        f"    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions\n{servers}"
    )


@contextmanager
def haproxy(cluster: PatroniCluster) -> Iterator[HAProxy]:
    """HAProxy (Debian's package) for `cluster`, started, with a primary it routes to."""
    proxy = HAProxy(primary_port=free_port(), replica_port=free_port())
    config = cluster.root / "haproxy.cfg"
    config.write_text(
        _HAPROXY_CONFIG
        + _haproxy_section("primary", proxy.primary_port, "primary", cluster.nodes)
        + _haproxy_section("replicas", proxy.replica_port, "replica", cluster.nodes)
    )
    with (cluster.root / "haproxy.log").open("ab") as log:
        process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:

            def routes() -> bool:
                with (
                    suppress(psycopg.OperationalError),
                    psycopg.connect(proxy.url("postgres"), connect_timeout=2) as connection,
                ):
                    return connection.execute("SELECT NOT pg_is_in_recovery()").fetchone() == (True,)
                return False

            cluster.wait_for(routes, what="HAProxy routes to the primary", deadline_s=30)
            yield proxy
        finally:
            process.terminate()
            process.wait(timeout=10)


@contextmanager
def patroni_cluster(root: Path) -> Iterator[PatroniCluster]:
    """etcd and NODES Patroni nodes, started, with a leader and every replica streaming;
    everything stopped on the way out (Patroni first, which stops its PostgreSQL)."""
    give_to_service_user(root)
    cluster = PatroniCluster(
        root=root,
        etcd_port=free_port(),
        nodes=[
            Node(name=f"node{number}", root=root / f"node{number}", pg_port=free_port(), api_port=free_port())
            for number in range(1, NODES + 1)
        ],
    )
    try:
        _start_etcd(cluster)
        for node in cluster.nodes:
            node.root.mkdir()
            give_to_service_user(node.root)
            node.config_path.write_text(yaml.safe_dump(_node_config(cluster, node)))
            log = (node.root / "stdout.log").open("ab")
            cluster._logs.append(log)
            node.process = subprocess.Popen(
                as_service_user([PATRONI, str(node.config_path)]), stdout=log, stderr=subprocess.STDOUT, cwd=node.root
            )
        cluster.wait_for(cluster.whole, what="a leader and every replica streaming")
        yield cluster
    finally:
        _stop(cluster)


def _start_etcd(cluster: PatroniCluster) -> None:
    peer_url = f"http://127.0.0.1:{free_port()}"
    client_url = f"http://127.0.0.1:{cluster.etcd_port}"
    log = (cluster.root / "etcd.log").open("ab")
    cluster._logs.append(log)
    cluster.etcd = subprocess.Popen(
        [
            *(ETCD, "--name", "etcd1", "--data-dir", str(cluster.root / "etcd")),
            *("--listen-client-urls", client_url, "--advertise-client-urls", client_url),
            *("--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url),
            *("--initial-cluster", f"etcd1={peer_url}", "--initial-cluster-state", "new"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def answers() -> bool:
        with suppress(OSError), urllib.request.urlopen(f"{client_url}/health", timeout=1) as response:  # noqa: S310
            return bool(json.load(response).get("health") == "true")
        return False

    cluster.wait_for(answers, what="etcd answers", deadline_s=30)


def _stop(cluster: PatroniCluster) -> None:
    for node in cluster.nodes:
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
    for node in cluster.nodes:
        if node.process is None:
            continue
        try:
            node.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.process.kill()
        pid = node.postmaster_pid()
        if pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if cluster.etcd is not None:
        cluster.etcd.terminate()
        try:
            cluster.etcd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cluster.etcd.kill()
    for log in cluster._logs:
        log.close()
