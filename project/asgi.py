"""ASGI entry point (gunicorn + uvicorn workers): pooled database connections, async views on
the event loop and every other request whole in a thread (project/server/handler.py)."""

import os

os.environ.setdefault("SERVER_MODE", "asgi")
# Web requests: a query running longer than 5 s is cancelled (DB_STATEMENT_TIMEOUT_MS in settings).
os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "5000")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django

from project.server.handler import PostlineASGIHandler

django.setup(set_prefix=False)
application = PostlineASGIHandler()
