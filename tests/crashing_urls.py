"""The real URLconf plus one view that fails, to see what clients get from an unhandled error."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from project.urls import handler500, urlpatterns

__all__ = ["handler500", "urlpatterns"]


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


urlpatterns = [*urlpatterns, path("crash/", crash)]
