"""The brief's sizing formulas, in the one place settings, gunicorn and `manage.py capacity` read."""

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cpu_count() -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup v2 CPU quota.

    In a container limited to 500m CPU, os.cpu_count() reports every core of the node, and a
    worker count derived from it would oversubscribe the quota.
    """
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()
    except (OSError, ValueError):
        return cores
    if quota == "max":
        return cores
    return max(1, min(cores, math.ceil(int(quota) / int(period))))


def recommended_pool_size(*, cores: int, spindles: int = 1) -> int:
    """Connections a host should hold open: cores x 2 + effective spindle count (SSD counts as 1)."""
    return cores * 2 + spindles


def predicted_throughput(*, pool_size: int, requests_per_connection: float, avg_response_s: float) -> float:
    """Little's law: requests/s = connections x requests each connection serves at once / latency."""
    if avg_response_s <= 0:
        raise ValueError("average response time must be positive")
    return pool_size * requests_per_connection / avg_response_s
