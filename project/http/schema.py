"""OpenAPI generation: every operation documents the errors it can answer with.

drf-spectacular describes success responses only; a client generated from such a schema (and
schemathesis) would treat a 400, 401 or 429 as a protocol violation. The rules here follow
what the views do: validation on bodies and query parameters, token authentication on every
API view, object permissions on writes, lookups by id, throttling everywhere, and a 503 from
every operation while PostgreSQL cannot be reached (project/http/api.py).
"""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiParameter

from project.http import idempotency

ERROR_SCHEMA = {
    "type": "object",
    "description": 'DRF\'s error shape: {"detail": "..."} or {"field": ["reason", ...]}.',
    "additionalProperties": True,
}


# project/http/throttling.py sends them on every response of a throttled view, 429 or not.
RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {
        "description": "The quota of this request's throttle (draft-ietf-httpapi-ratelimit-headers-10): "
        '`"anon";q=300;w=86400` is 300 requests a day per client address. Policies: `anon` (signed out, '
        "per address), `user` (signed in, per user), `auth` (the token endpoint, per address).",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left of that quota: `"anon";r=12;t=30` is 12 requests left in a window that '
        "ends in 30 seconds (on a 429, `t` is the Retry-After).",
        "schema": {"type": "string"},
    },
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
IDEMPOTENCY_KEY = OpenApiParameter(
    idempotency.HEADER,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Makes the request safe to retry: a retry with the same key and the same body within "
    "24 hours gets the first response again (marked `Idempotent-Replayed: true`) and creates nothing; "
    "the same key with another body is refused (422); a retry while the first is still running waits "
    "for it, or gets 409. Scoped to the caller (user, or client address when signed out). 1-255 "
    "visible ASCII characters; a UUID is a good key.",
)
REPLAYED = {
    idempotency.REPLAYED_HEADER: {
        "description": "`true` when this is the stored response of an earlier request with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


class PostlineAutoSchema(AutoSchema):
    def _is_idempotent(self) -> bool:
        """Whether the operation's view method is wrapped by project.http.idempotency.idempotent."""
        name = getattr(self.view, "action", None) or self.method.lower()
        return bool(getattr(getattr(self.view, name, None), "idempotent", False))

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if self._is_idempotent():
            parameters.append(IDEMPOTENCY_KEY)
        return parameters

    def _error_response(self, description: str) -> dict[str, Any]:
        component = ResolvedComponent(name="Error", type=ResolvedComponent.SCHEMA, schema=ERROR_SCHEMA, object="Error")
        self.registry.register_on_missing(component)
        return {"description": description, "content": {"application/json": {"schema": component.ref}}}

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)  # type: ignore[arg-type]
        method = self.method.upper()
        has_id = "{id}" in self.path
        errors: dict[str, str] = {"429": "Throttled; retry after `Retry-After` seconds."}
        if method in {"POST", "PATCH"} or (method == "GET" and not has_id) or self.path.endswith("/posts/"):
            errors["400"] = "Invalid input; each field names its reasons."
        if self.get_auth():
            errors["401"] = "Missing or invalid token (or a signed-in user is required)."
        if method in {"PATCH", "DELETE"} or self.path.endswith("/me/"):
            errors["403"] = "Signed in, but not allowed to do this."
        if has_id:
            errors["404"] = "No such object."
        errors["503"] = "The database is unavailable (e.g. restarting); retry after `Retry-After` seconds."
        if self._is_idempotent():
            errors["409"] = "A request with this Idempotency-Key is still being processed; retry in a moment."
            errors["422"] = "This Idempotency-Key was used with another request."
        for code, description in errors.items():
            responses.setdefault(code, self._error_response(description))
        for code, response in responses.items():
            headers = response.setdefault("headers", {})
            headers.update(RATE_LIMIT_HEADERS)
            if code in {"409", "429", "503"}:
                headers.update(RETRY_AFTER)
            if code.startswith("2") and self._is_idempotent():
                headers.update(REPLAYED)
        if method == "GET":
            # Answered by gunicorn itself, before Django, as a small HTML page.
            responses.setdefault(
                "414",
                {
                    "description": "Request line longer than the server accepts (8 KiB).",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
            )
        return dict(responses)
