"""JSON rendering with orjson: several times faster than the stdlib encoder DRF uses.

Measured on a page of 20 posts (docs/performance.md): the renderer is on every response's
path, so its cost counts. Browsable-API behaviour is not needed; output is compact UTF-8.
"""

from typing import Any

import orjson
from django.utils.functional import Promise
from rest_framework.renderers import JSONRenderer


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
