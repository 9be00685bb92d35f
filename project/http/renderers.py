"""JSON rendering with orjson: several times faster than the stdlib encoder DRF uses.

Measured on a page of 20 posts (docs/performance.md): the renderer is on every response's
path, so its cost counts; output is compact UTF-8. Browsers get DRF's browsable API (the second
renderer in settings) through DRF's own negotiation; API clients never reach it.
"""

from collections.abc import Iterable
from typing import Any

import orjson
from django.conf import settings
from django.utils.functional import Promise
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request


def _default(value: Any) -> Any:
    """What orjson cannot encode natively: lazy translation strings (error messages)."""
    if isinstance(value, Promise):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class ORJSONRenderer(JSONRenderer):
    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)


class BrowsableAPIWithItsStyles(BrowsableAPIRenderer):
    """DRF's browsable API under the site's Content-Security-Policy, with one exception: its
    templates style elements with inline `style` attributes, which `style-src 'self'` refuses.
    Scripts stay as strict as everywhere else (DRF's load from our static files)."""

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> Any:
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Security-Policy"] = settings.BROWSABLE_API_CONTENT_SECURITY_POLICY
        return super().render(data, accepted_media_type, renderer_context)


# What nearly every API client sends: no Accept header, or one of these.
_JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})


class JSONFirstNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, answered at once for the Accept headers API clients send.

    DRF parses and ranks the Accept header against every renderer on each request; when the
    client accepts anything or JSON, the answer is the first renderer (JSON) either way.
    """

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        first = renderers[0]
        if (
            format_suffix is None
            and first.media_type == "application/json"
            and request.META.get("HTTP_ACCEPT", "") in _JSON_ACCEPTS
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
