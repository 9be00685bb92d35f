"""Keyset (cursor) pagination over the queryset's own ORDER BY, or over rows a view fetches itself.

DRF's CursorPagination positions on the first ordering field only and resolves ties with an
OFFSET, which grows without bound when many rows share a timestamp, and it answers some
tampered cursors with a 500. This paginator seeks on the full, unique ordering tuple, so page
10,000 costs what page 1 costs (the index is entered at the cursor), rows inserted while a
client pages never cause a repeat or a skip, and a cursor that does not decode is a 400.

The seek condition for an ordering (a DESC, b DESC) after the row (x, y) is written
`a <= x AND (a < x OR b < y)`: the first conjunct is a plain range PostgreSQL uses as an
index condition, the rest only filters the rows tied on `a`.

A view whose rows do not come from one queryset (posts.search: raw SQL under a chosen plan)
calls `paginate_rows` with its sort keys and a fetch function; `seek_condition` builds its seek
the same way. A cursor can carry state besides the position (a search's ranking window), which
the fetch of the first page returns and every later page gets back unchanged.
"""

import base64
import binascii
import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

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
_LOOKUPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
Condition = TypeVar("Condition")


def encode_cursor(position: Sequence[Any], *, reverse: bool = False, state: Sequence[Any] | None = None) -> str:
    """The opaque cursor for a row's ordering values (ISO strings for datetimes)."""
    payload: dict[str, Any] = {"p": list(position), "r": reverse}
    if state is not None:
        payload["s"] = list(state)
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class SortKey:
    name: str
    descending: bool
    field: "Field[Any, Any]"


@dataclass(frozen=True)
class PageQuery:
    """What a fetch is asked for: `limit` rows strictly after `position` in the keys' order
    (before it, nearest first, when `reverse`), and the state the cursor carried."""

    position: list[Any] | None
    reverse: bool
    limit: int
    state: list[Any] | None


def seek_condition(
    keys: Sequence[tuple[str, bool]],
    position: Sequence[Any],
    *,
    reverse: bool,
    compare: Callable[[str, str, Any], Condition],
    both: Callable[[Condition, Condition], Condition],
    either: Callable[[Condition, Condition], Condition],
) -> Condition:
    """Rows strictly after `position` in the ordering `keys` (name, descending), before it when
    reversed, built from `compare(name, operator, value)` and the two connectives."""
    terms = list(zip(keys, position, strict=True))
    (last_name, last_descending), last_value = terms[-1]
    condition = compare(last_name, "<" if last_descending != reverse else ">", last_value)
    for (name, descending), value in reversed(terms[:-1]):
        after = descending != reverse
        up_to = compare(name, "<=" if after else ">=", value)
        condition = both(up_to, either(compare(name, "<" if after else ">", value), condition))
    return condition


def cursor_value(value: Any) -> Any:
    """A position or state value as a cursor holds it (ISO strings for datetimes)."""
    return value.isoformat() if hasattr(value, "isoformat") else value


def _order_key(term: str) -> tuple[str, bool]:
    """('created_at', True) for '-created_at'."""
    return term.lstrip("-"), term.startswith("-")


def _compare_q(name: str, operator_: str, value: Any) -> Q:
    return Q(**{f"{name}__{_LOOKUPS[operator_]}": value})


class KeysetCursorPagination(BasePagination):
    page_size = 20
    max_page_size = 100
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: APIView | None = None) -> list[Any]:
        ordering = [_order_key(str(term)) for term in queryset.query.order_by]
        keys = [SortKey(name, descending, self._field(queryset, name)) for name, descending in ordering]

        def fetch(page: PageQuery) -> tuple[list[Any], None]:
            rows = queryset
            if page.position is not None:
                rows = rows.filter(
                    seek_condition(
                        ordering,
                        page.position,
                        reverse=page.reverse,
                        compare=_compare_q,
                        both=operator.and_,
                        either=operator.or_,
                    )
                )
            if page.reverse:
                rows = rows.reverse()
            return list(rows[: page.limit]), None

        return self.paginate_rows(request, keys, fetch)

    def paginate_rows(
        self,
        request: Request,
        keys: Sequence[SortKey],
        fetch: Callable[[PageQuery], tuple[list[Any], list[Any] | None]],
        *,
        state_fields: Sequence["Field[Any, Any]"] = (),
    ) -> list[Any]:
        """One page of the rows `fetch` returns in the order of `keys` (the last one the primary
        key). `fetch` also returns the state the next cursors carry (None when `state_fields` is empty)."""
        self.request = request
        self.limit = self._page_size(request)
        if not keys or keys[-1].name not in {"id", "pk"}:
            raise AssertionError("keyset pagination needs an ordering that ends with the primary key")
        self.ordering = [(key.name, key.descending) for key in keys]
        self.fields = [key.field for key in keys]
        self.state_fields = list(state_fields)

        cursor = self._decode(request.query_params.get(self.cursor_query_param))
        self.reverse = bool(cursor and cursor["reverse"])
        page = PageQuery(
            position=cursor["position"] if cursor else None,
            reverse=self.reverse,
            limit=self.limit + 1,
            state=cursor["state"] if cursor else None,
        )
        rows, self.state = fetch(page)
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
        position = [cursor_value(getattr(row, name)) for name, _ in self.ordering]
        state = [cursor_value(value) for value in self.state or []] if self.state_fields else None
        token = encode_cursor(position, reverse=reverse, state=state)
        return replace_query_param(self.request.build_absolute_uri(), self.cursor_query_param, token)

    def _decode(self, token: str | None) -> dict[str, Any] | None:
        if token is None:
            return None
        if len(token) > CURSOR_MAX_LENGTH:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]})
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload = json.loads(raw)
            position, reverse, state = payload["p"], payload["r"], payload.get("s")
        except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        # A cursor carries state exactly when this pagination keeps some (a search's window).
        if not isinstance(reverse, bool) or (state is None) != (not self.state_fields):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]})
        return {
            "position": self._clean_all(self.fields, position),
            "reverse": reverse,
            "state": self._clean_all(self.state_fields, state) if self.state_fields else None,
        }

    def _clean_all(self, fields: Sequence["Field[Any, Any]"], values: Any) -> list[Any]:
        if not isinstance(values, list) or len(values) != len(fields):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]})
        try:
            return [self._clean(field, value) for field, value in zip(fields, values, strict=True)]
        except (DjangoValidationError, TypeError, ValueError, OverflowError):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None

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
