"""The job queue's worker process (project/jobs/worker.py): `make run` starts one beside gunicorn,
docker-compose and Kubernetes run it as a service of its own."""

import os
import socket
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from project.jobs.worker import Worker


class Command(BaseCommand):
    help = "Run queued jobs (emails...) until stopped; SIGTERM finishes the job in hand first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue", action="append", dest="queues", help="a queue to run (repeatable; default: default)"
        )
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls of an empty queue")
        parser.add_argument("--until-idle", action="store_true", help="stop when no job is due (for scripts and tests)")
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.JOBS_METRICS_PORT,
            help="serve this worker's /metrics on this port (0: none; the default, JOBS_METRICS_PORT). "
            "With PROMETHEUS_MULTIPROC_DIR set, as under `make run`, gunicorn's /metrics shows them too.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["metrics_port"]:
            registry = REGISTRY
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                registry = CollectorRegistry()
                MultiProcessCollector(registry)
            start_http_server(options["metrics_port"], registry=registry)
        worker = Worker(
            worker_id=f"{socket.gethostname()}-{os.getpid()}"[:64],
            queue_names=options["queues"] or ["default"],
            interval=options["interval"],
        )
        worker.stop_on_signals()
        ran = worker.run(until_idle=options["until_idle"])
        self.stdout.write(f"run_jobs: {ran} jobs run")
