"""ASGI entry point (gunicorn + uvicorn workers): pooled database connections."""

import os

os.environ.setdefault("SERVER_MODE", "asgi")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()
