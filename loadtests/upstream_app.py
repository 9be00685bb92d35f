"""A stand-in for the enrichment upstream in benchmarks: answers every GET after a fixed delay.

uvicorn loadtests.upstream_app:app --port 18100   (UPSTREAM_DELAY_MS, default 100)
"""

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

DELAY_S = int(os.environ.get("UPSTREAM_DELAY_MS", "100")) / 1000
BODY = b'{"reputation": 42, "source": "benchmark upstream"}'


async def app(
    scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
) -> None:
    if scope["type"] != "http":
        return
    await asyncio.sleep(DELAY_S)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})
