"""The job queue: work that must not run inside a request (emails first), kept in PostgreSQL.

Apps declare jobs with django-tasks' `@task` and enqueue them inside the transaction of the
write that asks for them; `manage.py run_jobs` runs them (project/jobs/worker.py). Why a queue
in PostgreSQL and what it guarantees: docs/jobs.md.
"""
