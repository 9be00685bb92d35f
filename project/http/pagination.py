"""Keyset (cursor) pagination over the queryset's own ORDER BY.

DRF's CursorPagination positions on the first ordering field only and resolves ties with an
OFFSET, which grows without bound when many rows share a timestamp, and it answers some
tampered cursors with a 500. This paginator seeks on the full, unique ordering tuple, so page
10,000 costs what page 1 costs (the index is entered at the cursor), rows inserted while a
client pages never cause a repeat or a skip, and a cursor that does not decode is a 400.

The seek condition for an ordering (a DESC, b DESC) after the row (x, y) is written
`a <= x AND (a < x OR b < y)`: the first conjunct is a plain range PostgreSQL uses as an
index condition, the rest only filters the rows tied on `a`.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field, Model, Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

INVALID_CURSOR = "Invalid cursor."
CURSOR_MAX_LENGTH = 512


def encode_cursor(position: Sequence[Any], *, reverse: bool = False) -> str:
    """The opaque cursor for a row's ordering values (ISO strings for datetimes)."""
    raw = json.dumps({"p": list(position), "r": reverse}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _order_key(term: str) -> tuple[str, bool]:
    """('created_at', True) for '-created_at'."""
    return term.lstrip("-"), term.startswith("-")


class KeysetCursorPagination(BasePagination):
    page_size = 20
    max_page_size = 100
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: APIView | None = None) -> list[Any]:
        self.request = request
        self.limit = self._page_size(request)
        self.ordering = [_order_key(str(term)) for term in queryset.query.order_by]
        if not self.ordering or self.ordering[-1][0] not in {"id", "pk"}:
            raise AssertionError("keyset pagination needs an ordering that ends with the primary key")
        self.fields = [self._field(queryset, name) for name, _ in self.ordering]

        cursor = self._decode(request.query_params.get(self.cursor_query_param))
        self.reverse = bool(cursor and cursor["reverse"])
        if cursor:
            queryset = queryset.filter(self._seek(cursor["position"], reverse=self.reverse))
        if self.reverse:
            queryset = queryset.reverse()

        rows = list(queryset[: self.limit + 1])
        more = len(rows) > self.limit
        rows = rows[: self.limit]
        if self.reverse:
            rows.reverse()
        # Going forward, a "previous" page exists whenever we came through a cursor; going
        # backward, a "next" page always exists (the page we came from).
        self.has_next = more if not self.reverse else True
        self.has_previous = bool(cursor) if not self.reverse else more
        self.first_row = rows[0] if rows else None
        self.last_row = rows[-1] if rows else None
        return rows

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data})

    def get_next_link(self) -> str | None:
        if not self.has_next or self.last_row is None:
            return None
        return self._link(self.last_row, reverse=False)

    def get_previous_link(self) -> str | None:
        if not self.has_previous or self.first_row is None:
            return None
        return self._link(self.first_row, reverse=True)

    # --- cursor encoding ----------------------------------------------------------------------

    def _link(self, row: Model, *, reverse: bool) -> str:
        position = [self._position_value(row, name) for name, _ in self.ordering]
        token = encode_cursor(position, reverse=reverse)
        return replace_query_param(self.request.build_absolute_uri(), self.cursor_query_param, token)

    @staticmethod
    def _position_value(row: Model, name: str) -> Any:
        value = getattr(row, name)
        return value.isoformat() if hasattr(value, "isoformat") else value

    def _decode(self, token: str | None) -> dict[str, Any] | None:
        if token is None:
            return None
        if len(token) > CURSOR_MAX_LENGTH:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]})
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload = json.loads(raw)
            position, reverse = payload["p"], payload["r"]
        except (binascii.Error, ValueError, TypeError, KeyError):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        if not isinstance(position, list) or len(position) != len(self.fields) or not isinstance(reverse, bool):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]})
        try:
            values = [self._clean(field, value) for field, value in zip(self.fields, position, strict=True)]
        except (DjangoValidationError, TypeError, ValueError, OverflowError):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        return {"position": values, "reverse": reverse}

    @staticmethod
    def _clean(field: "Field[Any, Any]", value: Any) -> Any:
        if value is None or isinstance(value, bool | dict | list):
            raise ValueError("not a position value")
        cleaned = field.to_python(value)
        if cleaned is None:
            raise ValueError("not a position value")
        if isinstance(cleaned, int) and not -(2**63) <= cleaned < 2**63:
            raise OverflowError("outside bigint")
        return cleaned

    @staticmethod
    def _field(queryset: QuerySet[Any], name: str) -> "Field[Any, Any]":
        try:
            return queryset.model._meta.get_field(name)
        except FieldDoesNotExist:
            return queryset.query.annotations[name].output_field

    def _seek(self, position: Sequence[Any], *, reverse: bool) -> Q:
        """Rows strictly after `position` in the ordering (before it when reversed)."""
        terms = list(zip(self.ordering, position, strict=True))
        (last_name, last_descending), last_value = terms[-1]
        condition = Q(**{f"{last_name}__{'lt' if last_descending != reverse else 'gt'}": last_value})
        for (name, descending), value in reversed(terms[:-1]):
            after = descending != reverse
            strictly = Q(**{f"{name}__{'lt' if after else 'gt'}": value})
            up_to = Q(**{f"{name}__{'lte' if after else 'gte'}": value})
            condition = up_to & (strictly | condition)
        return condition

    # --- page size ------------------------------------------------------------------------------

    def _page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise ValidationError(
                {self.page_size_query_param: [f"Must be an integer between 1 and {self.max_page_size}."]}
            )
        return size

    # --- OpenAPI ------------------------------------------------------------------------------

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {"next": link, "previous": link, "results": schema},
        }

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque position from a previous page's `next` or `previous` link.",
                "schema": {"type": "string", "maxLength": CURSOR_MAX_LENGTH},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page, 1 to {self.max_page_size} (default {self.page_size}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]
