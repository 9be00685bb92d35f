"""The floor under Postline's trivial view: Django 5.2 with no middleware and one view.

`make compare` serves it with Postline's own gunicorn configuration (same worker class, threads,
parser and worker count), so the distance from this to Postline's /healthz is what the
middleware stack, the URLconf and the settings cost, and nothing else.
"""

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="bare-django-floor-only-serves-a-constant",  # noqa: S106  # nosec B106
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [path("healthz", healthz)]
application = get_wsgi_application()
