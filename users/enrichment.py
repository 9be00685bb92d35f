"""External profile enrichment: the brief's `fetch_external_data`, made safe to depend on.

One httpx.AsyncClient per event loop (connection pooling and keep-alive for every request the
worker serves), a hard timeout, a circuit breaker, and a short cache. Whatever the upstream
does (slow, 5xx, bad JSON, refused), the caller gets a value or None, never an exception.
"""

import asyncio
import weakref
from typing import Any

import httpx
from django.conf import settings

from project.cache import store
from project.observability import metrics
from project.resilience.breaker import CircuitBreaker

TARGET = "profile-enrichment"

breaker = CircuitBreaker(
    "profile enrichment",
    threshold=settings.ENRICHMENT_BREAKER_THRESHOLD,
    cooldown=lambda: float(settings.ENRICHMENT_BREAKER_COOLDOWN),
)
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()


def _client() -> httpx.AsyncClient:
    """The running loop's client: a client's pooled connections belong to the loop that opened them."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20), follow_redirects=False
        )
        _clients[loop] = client
    return client


class UpstreamError(Exception):
    """The upstream answered, but with an error status or not with a JSON object."""


def _outcome(response: httpx.Response) -> tuple[str | None, Any]:
    """(failure outcome or None, parsed body)."""
    if response.is_error:
        return "http_error", None
    try:
        data = response.json()
    except ValueError:
        return "malformed", None
    return (None, data) if isinstance(data, dict) else ("malformed", None)


async def _fetch(user_id: int) -> dict[str, Any]:
    url = settings.PROFILE_ENRICHMENT_URL.format(user_id=user_id)
    with metrics.track_outbound(TARGET) as call:
        response = await _client().get(url, timeout=settings.PROFILE_ENRICHMENT_TIMEOUT)
        call.outcome, data = _outcome(response)
    if call.outcome:
        raise UpstreamError(f"{call.outcome} (HTTP {response.status_code})")
    return dict(data)


async def fetch_enrichment(user_id: int) -> dict[str, Any] | None:
    """The upstream's data for this user, or None when it is unavailable (or not configured)."""
    if not settings.PROFILE_ENRICHMENT_URL or not breaker.allow():
        return None

    async def fetch() -> dict[str, Any] | None:
        try:
            data = await _fetch(user_id)
        except (httpx.HTTPError, UpstreamError) as error:
            breaker.record_failure(error)
            return None
        breaker.record_success()
        return data

    return await store.cached_external(
        name="enrichment", parts=[user_id], ttl=settings.ENRICHMENT_CACHE_TTL, fetch=fetch
    )
