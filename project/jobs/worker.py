"""The job queue's worker, over django-tasks' database backend (django_tasks_db).

django_tasks_db keeps each job as a row written in the transaction that enqueued it: a job of a
write that rolls back never exists, one of a write that commits is on disk with it. Its own
worker (db_worker) claims a job in one transaction and runs it after that commits, so a worker
killed mid-job leaves the job RUNNING for ever, and a job that raises is never tried again.
This worker keeps the backend's rows and API and changes how they are run:

- A job runs inside the transaction that locked its row (SELECT ... FOR UPDATE SKIP LOCKED;
  other workers pass over it). A worker killed mid-job loses its connection, PostgreSQL rolls
  the claim back, and the job is due again for the next worker at once: every job runs at least
  once. What the job wrote to the database rolls back with it; what it sent (an email) may be
  sent again, so jobs are written to be safe to repeat.
- A job that raises is tried again after JOB_RETRY_BASE_SECONDS x 2^(attempt - 1) (at most
  JOB_RETRY_MAX_SECONDS), up to JOB_MAX_ATTEMPTS attempts; then it stays FAILED with its
  traceback, which staff see in the admin. Every attempt counts in postline_jobs_total.
"""

import logging
import signal
import time
from dataclasses import dataclass, field
from datetime import timedelta
from traceback import format_exception
from types import FrameType
from typing import Any

from django.conf import settings
from django.db import OperationalError, close_old_connections, transaction
from django.db.models import Case, Count, F, Min, When
from django.db.models.functions import Greatest
from django.utils import timezone
from django_tasks.base import TaskContext, TaskResultStatus
from django_tasks_db.models import DBTaskResult, DBTaskResultQuerySet, get_date_max

from project.observability.metrics import record_job, set_jobs_waiting

logger = logging.getLogger(__name__)

SUCCEEDED, RETRIED, FAILED = "succeeded", "retried", "failed"
# How often a worker counts the jobs waiting, busy or not (a busy queue is when it matters).
REPORT_SECONDS = 15.0


def retry_delay(attempt: int) -> timedelta:
    """How long a job waits after its `attempt`-th failed attempt (1, 2, ...)."""
    seconds = settings.JOB_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    return timedelta(seconds=min(seconds, settings.JOB_RETRY_MAX_SECONDS))


@dataclass
class Worker:
    worker_id: str
    backend_name: str = "default"
    queue_names: list[str] = field(default_factory=lambda: ["default"])
    interval: float = 1.0
    running: bool = True

    def due(self) -> DBTaskResultQuerySet:
        return DBTaskResult.objects.ready().filter(backend_name=self.backend_name, queue_name__in=self.queue_names)

    def run(self, *, until_idle: bool = False) -> int:
        """Run jobs until stopped (or, `until_idle`, until none is due); how many ran."""
        ran = 0
        reported = 0.0
        while self.running:
            if not transaction.get_connection().in_atomic_block:
                # As between requests: drop a broken or expired connection. (A caller's
                # transaction, a test's, keeps its connection.)
                close_old_connections()
            try:
                if time.monotonic() - reported >= REPORT_SECONDS:
                    self.report_waiting()
                    reported = time.monotonic()
                if self.run_one():
                    ran += 1
                    continue
            except OperationalError as error:
                # PostgreSQL restarting or out of reach: the job in hand (if any) rolled back
                # with the connection; wait, reconnect and go on.
                logger.warning("worker %s: database unavailable (%s); retrying", self.worker_id, error)
                transaction.get_connection().close()
            if until_idle:
                break
            time.sleep(self.interval)
        return ran

    def run_one(self) -> bool:
        """Run the next due job, if there is one, in the transaction that locks it."""
        with transaction.atomic():
            job = self.due().select_for_update(skip_locked=True).first()
            if job is None:
                return False
            job.claim(self.worker_id)
            self._attempt(job)
        return True

    def _attempt(self, job: DBTaskResult) -> None:
        started = time.perf_counter()
        try:
            # A savepoint: a job that raises leaves none of its writes, and its row can still be updated.
            with transaction.atomic():
                task, arguments = job.task, job.args_kwargs
                context = (TaskContext(task_result=job.task_result),) if task.takes_context else ()
                value = task.call(*context, *arguments["args"], **arguments["kwargs"])
        except Exception as error:  # noqa: BLE001  # any failure of the job's code is the job's outcome
            outcome = self._failed(job, error)
        else:
            job.status = TaskResultStatus.SUCCESSFUL
            job.return_value = value
            job.finished_at = timezone.now()
            job.exception_class_path = job.traceback = ""
            job.save(update_fields=["status", "return_value", "finished_at", "exception_class_path", "traceback"])
            outcome = SUCCEEDED
        record_job(job.task_path, outcome, time.perf_counter() - started)

    def _failed(self, job: DBTaskResult, error: Exception) -> str:
        attempt = len(job.worker_ids)
        job.exception_class_path = f"{type(error).__module__}.{type(error).__qualname__}"
        job.traceback = "".join(format_exception(error))
        if attempt < settings.JOB_MAX_ATTEMPTS:
            job.status = TaskResultStatus.READY
            job.run_after = timezone.now() + retry_delay(attempt)
            outcome = RETRIED
        else:
            job.status = TaskResultStatus.FAILED
            job.finished_at = timezone.now()
            outcome = FAILED
        job.save(update_fields=["status", "run_after", "finished_at", "exception_class_path", "traceback"])
        log = logger.error if outcome == FAILED else logger.warning
        log(
            "job %s (%s) attempt %d of %d failed: %s",
            job.id,
            job.task_path,
            attempt,
            settings.JOB_MAX_ATTEMPTS,
            job.exception_class_path,
            extra={"job_id": str(job.id), "task": job.task_path, "attempt": attempt, "outcome": outcome},
        )
        return outcome

    def report_waiting(self) -> None:
        """Each queue's depth and its oldest due job's wait, for /metrics (an indexed query each)."""
        since = Case(
            When(run_after=get_date_max(), then=F("enqueued_at")), default=Greatest("enqueued_at", "run_after")
        )
        for queue in self.queue_names:
            waiting = self.due().filter(queue_name=queue).order_by().aggregate(count=Count("id"), oldest=Min(since))
            age = (timezone.now() - waiting["oldest"]).total_seconds() if waiting["oldest"] else 0.0
            set_jobs_waiting(queue, waiting["count"], max(age, 0.0))

    def stop_on_signals(self) -> None:
        """SIGTERM or SIGINT: finish the job in hand, then stop; a second one stops at once (the
        job in hand rolls back and runs again elsewhere)."""

        def stop(signum: int, frame: FrameType | None) -> Any:
            if not self.running:
                raise SystemExit(1)
            logger.info("worker %s: %s, stopping after the job in hand", self.worker_id, signal.strsignal(signum))
            self.running = False

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
