"""WSGI entry point (gunicorn gthread workers): persistent database connections."""

import os

os.environ.setdefault("SERVER_MODE", "wsgi")
# Web requests: a query running longer than 5 s is cancelled (DB_STATEMENT_TIMEOUT_MS in settings).
os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "5000")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
