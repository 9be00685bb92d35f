"""The real URLconf plus views that fail, to see what clients get from an unhandled error and
from a query the statement timeout cancels."""

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from project.urls import handler500, urlpatterns

__all__ = ["handler500", "urlpatterns"]


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


class SlowQueryView(APIView):
    """A query that outlives a 50 ms statement timeout, as DB_STATEMENT_TIMEOUT_MS would cancel it."""

    permission_classes = (AllowAny,)

    def get(self, request: Request) -> Response:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 50")
            cursor.execute("SELECT pg_sleep(1)")
        return Response({})


urlpatterns = [*urlpatterns, path("crash/", crash), path("slow/", SlowQueryView.as_view())]
