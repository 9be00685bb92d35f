"""The brief's sizing formulas, in the one place settings, gunicorn and `manage.py capacity` read."""

import os


def cpu_count() -> int:
    """CPUs this process may run on (respects cgroup/affinity limits, unlike os.cpu_count())."""
    return len(os.sched_getaffinity(0))


def recommended_pool_size(*, cores: int, spindles: int = 1) -> int:
    """Connections a host should hold open: cores x 2 + effective spindle count (SSD counts as 1)."""
    return cores * 2 + spindles


def predicted_throughput(*, pool_size: int, requests_per_connection: float, avg_response_s: float) -> float:
    """Little's law: requests/s = connections x requests each connection serves at once / latency."""
    if avg_response_s <= 0:
        raise ValueError("average response time must be positive")
    return pool_size * requests_per_connection / avg_response_s
