# syntax=docker/dockerfile:1
# Postline's one image. Its CMD serves the API with gunicorn; the same image runs the
# pre-start step, `python manage.py prestart`, as the compose `migrate` service and the
# Kubernetes migration Job. tests/test_container_command.py reads this file's final-stage ENV
# and CMD and runs that exact command, so keep both in their simple one-line forms.
#
#   docker build -t ghcr.io/postline/postline:0.1.0 .

# --- builder: a virtualenv with the runtime dependencies -----------------------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# gunicorn_h1c (gunicorn's C HTTP parser) is published as source only, so this stage has a C
# compiler; the runtime stage copies the virtualenv alone and carries none. Versions come with
# the base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
# Dependencies come from pyproject.toml alone, so this layer is rebuilt only when they change,
# not on every source edit. Every other dependency ships a manylinux wheel.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --requirement requirements.txt

# --- runtime ---------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="Postline" \
      org.opencontainers.image.description="Users-and-posts REST backend (Django, gunicorn)" \
      org.opencontainers.image.source="https://github.com/postline/postline"

# The project runs from its source in /app (manage.py and project/gunicorn.conf.py are paths);
# it is not also installed into the virtualenv, which would put a second copy of the code in
# site-packages. gunicorn's control socket is disabled in gunicorn.conf.py and the embedded
# PostgreSQL is never started in production, so no XDG_RUNTIME_DIR is needed.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_ENV=production \
    BIND=0.0.0.0:8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus

# A fixed, high UID/GID (above any host range) so that Kubernetes' runAsUser, volume ownership
# and file permissions can name it.
RUN groupadd --system --gid 10001 postline \
    && useradd --system --uid 10001 --gid postline --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin postline

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# The source stays owned by root: the server process can read it, never change it.
COPY . .

# Static files are collected, hashed and compressed at build time (WhiteNoise serves them from
# /app/staticfiles). Production settings insist on these variables; collectstatic connects to
# neither the database nor Redis, so placeholders do. The metrics directory is created for
# `docker run`; Kubernetes and compose mount a fresh one over /tmp.
RUN SECRET_KEY=placeholder-for-collectstatic-at-image-build-never-signs-anything \
    ALLOWED_HOSTS=build.invalid \
    EMAIL_HOST=build.invalid \
    FRONTEND_URL=http://build.invalid \
    DATABASE_URL=postgres://build@localhost/build \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p "$PROMETHEUS_MULTIPROC_DIR" \
    && chown postline:postline "$PROMETHEUS_MULTIPROC_DIR"

USER 10001:10001
EXPOSE 8000

# Liveness only (the process answers); readiness (/readyz) is the orchestrator's business.
# The Host header is the first ALLOWED_HOSTS entry, so the probe passes host validation.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; host = os.environ['ALLOWED_HOSTS'].split(',')[0].strip().lstrip('.').replace('*', 'localhost'); r.urlopen(r.Request('http://127.0.0.1:' + os.environ['BIND'].rpartition(':')[2] + '/healthz', headers={'Host': host}), timeout=4)"]

CMD ["gunicorn", "-c", "project/gunicorn.conf.py"]
