"""REST framework pieces every app shares: strict input, one error shape."""

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from psycopg.errors import QueryCanceled
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

UNKNOWN_FIELD = "Unknown field."
DATABASE_UNAVAILABLE = "The database is unavailable; retry shortly."
# A query cancelled by the statement timeout (DB_STATEMENT_TIMEOUT_MS), e.g. a search for a
# word that most posts contain.
QUERY_TOO_SLOW = "The query took too long and was cancelled; narrow it down or retry later."
# Seconds a client should wait before retrying while the database is unreachable.
DATABASE_RETRY_AFTER = "2"


class StrictSerializer(serializers.Serializer):
    """Rejects fields the serializer does not know, instead of silently dropping them.

    A typo such as {"tilte": ...} would otherwise be a 200 that changed nothing. Read-only
    fields (a post's author, a user's id) are known, so they are accepted and ignored.
    """

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise ValidationError({name: [UNKNOWN_FIELD] for name in unknown})
        return super().validate(attrs)


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer):
    pass


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus Django's ValidationError (raised by services) as a 400, and a
    database that cannot be reached (down, restarting, a dropped connection) as a 503.

    Those database errors are transient, not bugs: a 503 with Retry-After tells clients and
    load balancers to try again, where a 500 would page someone for every in-flight request
    of a PostgreSQL restart. Django closes the broken connection when the request ends, and
    the next request connects afresh.
    """
    if isinstance(exc, OperationalError) and isinstance(exc.__cause__, QueryCanceled):
        logger.warning("query cancelled: %s", exc)
        return Response({"detail": QUERY_TOO_SLOW}, status=503, headers={"Retry-After": DATABASE_RETRY_AFTER})
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        return Response({"detail": DATABASE_UNAVAILABLE}, status=503, headers={"Retry-After": DATABASE_RETRY_AFTER})
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = ValidationError(detail=detail)
    return drf_exception_handler(exc, context)


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """handler500: the API's error shape instead of an HTML page; Django has logged the error."""
    return JsonResponse({"detail": "Internal server error."}, status=500)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler404: URLs that match no route answer in the API's error shape too."""
    return JsonResponse({"detail": "Not found."}, status=404)
