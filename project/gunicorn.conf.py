"""gunicorn configuration: one file for `make run`, the container and Kubernetes.

SERVER_MODE picks the worker model: `wsgi` (gthread workers, persistent database
connections) or `asgi` (uvicorn workers, Django's psycopg pool). docs/performance.md has the
measurements behind the default.
"""

import gc
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from project.devservers import embedded
from project.env import env_choice, env_int, env_str, redact_url
from project.server.capacity import cpu_count

server_mode = env_choice("SERVER_MODE", "wsgi", {"wsgi", "asgi"})
os.environ["SERVER_MODE"] = server_mode

# Either worker model listens only while its worker holds no more connections than any other:
# on the shared socket below, the stock workers often take a whole burst of keep-alive
# connections into one worker while the other idles (project/server/balance.py).
if server_mode == "asgi":
    wsgi_app = "project.asgi:application"
    worker_class = "project.server.asgi_worker.BalancedUvicornWorker"
else:
    wsgi_app = "project.wsgi:application"
    worker_class = "project.server.worker.BalancedThreadWorker"
    threads = env_int("GUNICORN_THREADS", 4, minimum=1)

bind = [env_str("BIND", "127.0.0.1:8000")]
# One listening socket, held by the master and shared by the workers, not SO_REUSEPORT's socket
# per worker. reuse_port measured better balance under wrk (docs/performance.md), but a worker's
# own socket dies with it: after a SIGKILL of one worker, connections queued on its socket, and
# new ones hashed to it until the kernel drops it, were reset (tests/test_faults.py). The shared
# socket keeps accepting for the live workers and the respawned one; BalancedThreadWorker gives
# the balance back.
reuse_port = False
# The C parser from gunicorn_h1c (a dependency), and gunicorn's pure-Python one wherever the
# extension cannot be imported.
http_parser = "auto"
workers = env_int("WEB_CONCURRENCY", max(2, cpu_count()), minimum=1)
timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
graceful_timeout = 30
keepalive = 5
# The largest request line gunicorn allows; longer ones get a 414 (documented in the schema).
limit_request_line = 8190
# Recycle workers now and then, so that a slow leak in any library cannot grow without bound.
# Not often: a new worker costs 0.7 s of CPU to load the app and starts with a cold in-process
# cache (project/cache/local_cache.py). 20,000 recycled each worker every ~13 s under make compare's
# load (~1,500 req/s a worker); at 250,000 that is every few minutes at peak, and the 10-minute
# soak's memory stays flat without any recycling (docs/reliability.md).
max_requests = env_int("GUNICORN_MAX_REQUESTS", 250_000, minimum=0)
max_requests_jitter = max_requests // 10
# We do not drive gunicorn through its control socket; without this it opens ~/.gunicorn/.
control_socket_disable = True
# Request logs come from the application (one structured line per request).
accesslog = None
errorlog = "-"
loglevel = env_str("LOG_LEVEL", "info").lower()

# prometheus_client's multiprocess mode must see this variable before a worker imports it:
# set here, in the master, before any fork.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="postline-metrics-")


def on_starting(server: Any) -> None:
    """Master start-up: attach the embedded servers and start metrics from zero."""
    embedded_names = embedded.hold()
    metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("gunicorn.error").info(
        "Postline %s on %s: database %s%s, cache %s%s",
        server_mode.upper(),
        ", ".join(bind),
        redact_url(os.environ.get("DATABASE_URL", "")),
        " (embedded)" if "DATABASE_URL" in embedded_names else "",
        redact_url(os.environ.get("REDIS_URL", "")),
        " (embedded)" if "REDIS_URL" in embedded_names else "",
    )


# A request thread waiting for the GIL after a database reply waits for the running thread to
# give it up, up to the switch interval (5 ms by default) at every round trip; and a full
# garbage collection walks every object the application loaded. Both showed in the p99 of
# searches at 8 connections: 127-192 ms, against 83-97 ms with both levers below (WSGI), 184-225
# against 105-142 ms (ASGI), interleaved runs of 2026-12-06 (docs/performance.md).
SWITCH_INTERVAL_S = 0.001


def post_worker_init(worker: Any) -> None:
    """In each worker, once the application is loaded: what it loaded is never collected, so a
    full collection need not walk it (gc.freeze), and threads take turns at the GIL sooner."""
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the summed metrics."""
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(worker.pid)
