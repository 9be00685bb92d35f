"""REST framework pieces every app shares: strict input, fast output, one error shape."""

import datetime
import logging
import operator
from collections.abc import Callable, Mapping
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.signals import setting_changed
from django.db import InterfaceError, InternalError, OperationalError
from django.db.models.manager import BaseManager
from django.dispatch import receiver
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from rest_framework import ISO_8601, fields, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from project.db.errors import query_cancelled, read_only

logger = logging.getLogger(__name__)

# Ids in URLs are bigints: more digits cannot name a row, and would overflow in PostgreSQL.
ID_PATTERN = r"[0-9]{1,18}"

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


# --- Output -----------------------------------------------------------------------------------

_Zone = datetime.tzinfo | None
_Converter = Callable[[Any, _Zone], Any]
_Row = Callable[[Any, _Zone], dict[str, Any]]

# Fields whose to_representation depends on the value only (not on the request, the context or
# the time zone), by the function they use; None: call it. A subclass that overrides
# to_representation is not in here, and so not planned.
_PURE_OUTPUT: dict[Any, Callable[[Any], Any] | None] = {
    fields.CharField.to_representation: str,  # EmailField, SlugField, URLField... too
    fields.IntegerField.to_representation: int,
    fields.BigIntegerField.to_representation: None,  # type: ignore[attr-defined]  # str or int, by COERCE_BIGINT_TO_STRING
    fields.BooleanField.to_representation: None,
    fields.FloatField.to_representation: None,
    fields.JSONField.to_representation: None,
    fields.ReadOnlyField.to_representation: None,
    # A format other than ISO 8601 (strftime) needs no time zone lookup of ours.
    fields.DateTimeField.to_representation: None,
}


class _NotPlannableError(Exception):
    """A field the plan does not cover: the serializer stays DRF's."""


def _datetime_converter(field: serializers.DateTimeField) -> _Converter | None:
    """DateTimeField.to_representation in ISO 8601 with the time zone looked up once per call
    of the serializer, not once per value; the field itself for anything unusual."""
    output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
    if output_format is None or output_format.lower() != ISO_8601:
        return None
    own_zone = hasattr(field, "timezone")
    field_zone = getattr(field, "timezone", None)
    slow = field.to_representation

    def convert(value: Any, zone: _Zone) -> Any:
        if own_zone:
            zone = field_zone
        if zone is None or not isinstance(value, datetime.datetime) or value.utcoffset() is None:
            return slow(value)
        try:
            text = value.astimezone(zone).isoformat()
        except OverflowError:
            return slow(value)
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return convert


def _converter(field: fields.Field) -> _Converter:
    """What turns the field's (non-None) value into its output, or _NotPlannableError."""
    if isinstance(field, OutputModelSerializer):
        nested = field.compiled_row()
        if nested is None:
            raise _NotPlannableError(f"{field.field_name!r} is not planned")
        return nested
    if isinstance(field, serializers.ListSerializer) and isinstance(field.child, OutputModelSerializer):
        row = field.child.compiled_row()
        if row is None:
            raise _NotPlannableError(f"{field.field_name!r} is not planned")

        def rows(value: Any, zone: _Zone) -> list[dict[str, Any]]:
            items = value.all() if isinstance(value, BaseManager) else value
            return [row(item, zone) for item in items]

        return rows
    method = type(field).to_representation
    if method not in _PURE_OUTPUT:
        raise _NotPlannableError(f"{type(field).__name__} {field.field_name!r}")
    if method is fields.DateTimeField.to_representation:
        fast = _datetime_converter(field)  # type: ignore[arg-type]
        if fast is not None:
            return fast
    plain = _PURE_OUTPUT[method] or field.to_representation
    if method is fields.BigIntegerField.to_representation:  # type: ignore[attr-defined]
        plain = str if getattr(field, "coerce_to_string", api_settings.COERCE_BIGINT_TO_STRING) else int
    return lambda value, zone: plain(value)


def _compile(serializer: "OutputModelSerializer") -> _Row:
    """The serializer's to_representation as (name, getter, converter) steps, from its fields.

    Each step does what Serializer.to_representation does for one field: the value read by
    attribute (the field's own get_attribute when that fails or yields a callable, which it
    would call), None as None, else the converter.
    """
    steps = []
    for field in serializer._readable_fields:
        converter = _converter(field)
        if not field.source_attrs:  # source="*"
            raise _NotPlannableError(f"{field.field_name!r} has source='*'")
        steps.append((cast(str, field.field_name), operator.attrgetter(".".join(field.source_attrs)), field, converter))
    plan = tuple(steps)
    skip = fields.SkipField
    drf_row = serializers.Serializer.to_representation

    def row(instance: Any, zone: _Zone) -> dict[str, Any]:
        if isinstance(instance, Mapping):  # read by key, not by attribute
            return drf_row(serializer, instance)
        output: dict[str, Any] = {}
        for name, getter, field, convert in plan:
            try:
                value = getter(instance)
            except (AttributeError, KeyError, ObjectDoesNotExist):  # what DRF's get_attribute handles
                value = _drf_attribute(field, instance)
            else:
                if callable(value):
                    value = _drf_attribute(field, instance)
            if value is skip:
                continue
            output[name] = None if value is None else convert(value, zone)
        return output

    return row


def _drf_attribute(field: fields.Field, instance: Any) -> Any:
    try:
        return field.get_attribute(instance)
    except fields.SkipField:
        return fields.SkipField


_compiled: dict[type, _Row | None] = {}


@receiver(setting_changed)
def _forget_compiled(*, setting: str, **kwargs: Any) -> None:
    """Plans read REST_FRAMEWORK's formats and the time zone settings: tests override them."""
    if setting in {"REST_FRAMEWORK", "USE_TZ", "TIME_ZONE"}:
        _compiled.clear()


def current_zone() -> _Zone:
    """What DateTimeField.default_timezone() answers, once for a whole response."""
    return timezone.get_current_timezone() if settings.USE_TZ else None


# `many=True` of an OutputModelSerializer: the time zone once for every row.
class OutputListSerializer(serializers.ListSerializer):
    def to_representation(self, data: Any) -> list[Any]:
        row = self.child.compiled_row() if isinstance(self.child, OutputModelSerializer) else None
        if row is None:
            return super().to_representation(data)
        items = data.all() if isinstance(data, BaseManager) else data
        zone = current_zone()
        return [row(item, zone) for item in items]


# A ModelSerializer for responses whose to_representation is planned once per class.
#
# DRF builds a ModelSerializer's fields for every serializer instance (model introspection,
# a deep copy of the declared ones: ~107 us for PostSerializer, again for its nested author)
# and then, for each row and field, walks generic code (get_attribute, SkipField and
# PKOnlyObject checks, the active time zone through asgiref's Local for every datetime): 20
# posts cost 650-980 us. Here a prototype instance's fields are read once per class into a
# plan of (name, getter, converter) steps, each step a field's own behaviour, and each row
# runs the plan; the time zone is looked up once per response. The output is the same,
# byte for byte (tests/test_output_serializers.py compares it with DRF's).
#
# Only fields whose output depends on nothing but the value are planned (see _PURE_OUTPUT;
# nested OutputModelSerializers, one or many). A serializer with any other field (a
# SerializerMethodField, a hyperlink that needs the request...) or its own to_representation
# is left to DRF. Input (validation, create, update) is DRF's either way.
#
# A comment, not a docstring: drf-spectacular publishes the first docstring in a serializer's
# MRO as its description in the OpenAPI schema, and PostSerializer has none of its own.
class OutputModelSerializer(serializers.ModelSerializer):
    @classmethod
    def many_init(cls, *args: Any, **kwargs: Any) -> serializers.BaseSerializer:
        serializer = super().many_init(*args, **kwargs)
        if type(serializer) is serializers.ListSerializer:
            serializer.__class__ = OutputListSerializer
        return serializer

    def compiled_row(self) -> _Row | None:
        """This class's plan, built on first use; None when DRF's own code must run."""
        cls = type(self)
        try:
            return _compiled[cls]
        except KeyError:
            pass
        row: _Row | None = None
        # The plan is per class: fields that depend on the instance's arguments or context
        # (an __init__ or get_fields of its own) would not be the same for every instance.
        if (
            cls.to_representation is OutputModelSerializer.to_representation
            and cls.__init__ is serializers.BaseSerializer.__init__
            and cls.get_fields is serializers.ModelSerializer.get_fields
        ):
            try:
                row = _compile(cls())
            except _NotPlannableError as reason:
                logger.debug("%s is serialized by DRF: %s", cls.__name__, reason)
        _compiled[cls] = row
        return row

    def to_representation(self, instance: Any) -> Any:
        row = self.compiled_row()
        if row is None:
            return super().to_representation(instance)
        return row(instance, current_zone())


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus Django's ValidationError (raised by services) as a 400, and a
    database that cannot be reached (down, restarting, a dropped connection, a primary gone
    read-only in a failover) as a 503.

    Those database errors are transient, not bugs: a 503 with Retry-After tells clients and
    load balancers to try again, where a 500 would page someone for every in-flight request
    of a PostgreSQL restart. Django closes the broken connection when the request ends, and
    the next request connects afresh.
    """
    if isinstance(exc, OperationalError) and query_cancelled(exc):
        logger.warning("query cancelled: %s", exc)
        return Response({"detail": QUERY_TOO_SLOW}, status=503, headers={"Retry-After": DATABASE_RETRY_AFTER})
    if isinstance(exc, OperationalError | InterfaceError) or (isinstance(exc, InternalError) and read_only(exc)):
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
