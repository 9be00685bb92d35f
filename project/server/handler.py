"""The ASGI application: async views on the event loop, every other request whole in a thread.

Django's ASGI handler serves a sync view's request in four thread hops (request_started, the
view, the rendering, response.close with request_finished), and runs every sync view of a
process in one thread. A request for a sync view (every DRF endpoint but the overview) goes
instead to Django's WSGI handler, run whole in one of DB_POOL_SIZE threads by a2wsgi, as a
gthread worker runs it: one hop, the middleware called sync. On one uvicorn worker serving a
search at 4 connections that took 208 req/s to 312-326, against 365 for a gthread worker
(docs/performance.md). A request whose view is a coroutine (the overview, which awaits an
HTTP call beside its query) keeps Django's ASGI handler and the event loop.

Django keeps database connections per thread and hands them back to the pool at
request_finished, which the WSGI handler sends in the request's own thread; per-request state
(request id, read-your-writes routing) lives in ContextVars, which a2wsgi carries into the
thread. The URL is resolved here and again by Django: a few microseconds. The body is read
before the thread starts, into a file that spills to disk past FILE_UPLOAD_MAX_MEMORY_SIZE, as
Django's ASGI handler reads it.
"""

from typing import IO, Any

from a2wsgi import WSGIMiddleware
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.urls import Resolver404, get_resolver


def _serves_an_async_view(path: str) -> bool:
    try:
        match = get_resolver().resolve(path)
    except Resolver404:
        return False
    return iscoroutinefunction(match.func)


def _replaying(body: IO[bytes]) -> Any:
    """An ASGI `receive` that hands over a body already read, in chunks."""

    async def receive() -> dict[str, Any]:
        chunk = body.read(ASGIHandler.chunk_size)
        return {"type": "http.request", "body": chunk, "more_body": len(chunk) == ASGIHandler.chunk_size}

    return receive


def _with_content_length(scope: Any, body: IO[bytes]) -> Any:
    """The scope with the length of the body read: Django's WSGI request reads CONTENT_LENGTH
    bytes and no more, so a chunked upload (no Content-Length) would otherwise reach the view
    empty."""
    if any(name == b"content-length" for name, _ in scope["headers"]):
        return scope
    length = body.seek(0, 2)
    body.seek(0)
    return {**scope, "headers": [*scope["headers"], (b"content-length", str(length).encode())]}


class PostlineASGIHandler:
    def __init__(self) -> None:
        self._async_views = ASGIHandler()
        wsgi_handler: Any = WSGIHandler()
        self._sync_views = WSGIMiddleware(wsgi_handler, workers=settings.DB_POOL_SIZE)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not _serves_an_async_view(scope["path"]):
            # The whole body first, on the loop, as Django's ASGI handler reads it: a client that
            # leaves before sending all of it gets no response, where a2wsgi reading it from the
            # thread would hand the view an empty body (a 400 for a request nobody awaits).
            try:
                body = await self._async_views.read_body(receive)
            except RequestAborted:
                return
            with body:
                await self._sync_views(_with_content_length(scope, body), _replaying(body), send)
        else:
            await self._async_views(scope, receive, send)
