"""WSGI entry point (gunicorn gthread workers): persistent database connections."""

import os

os.environ.setdefault("SERVER_MODE", "wsgi")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
