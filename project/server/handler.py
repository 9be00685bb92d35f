"""The ASGI application: async views on the event loop, every other request whole in a thread.

Django's ASGI handler serves a sync view's request in four thread hops (request_started, the
view, the rendering, response.close with request_finished), and runs every sync view of a
process in one thread. A request for a sync view (every DRF endpoint but the overview) goes
instead to Django's WSGI handler, run whole in one of DB_POOL_SIZE threads, as a gthread worker
runs it: one hop, the middleware called sync. On one uvicorn worker serving a search at 4
connections that took 208 req/s to 312-326, against 365 for a gthread worker
(docs/performance.md). A request whose view is a coroutine (the overview, which awaits an HTTP
call beside its query) keeps Django's ASGI handler and the event loop.

The thread hands back the whole response, status, headers and body, in one hop. a2wsgi (which
served these until 2026-12-06) hands over each message through a queue and a task on the loop,
three round trips between thread and loop per request: ~15 % of a uvicorn worker's time on a
search. A streaming response (a static file) is still sent chunk by chunk from its thread.

Django keeps database connections per thread and hands them back to the pool at
request_finished, which the WSGI handler sends in the request's own thread (response.close());
per-request state (request id, read-your-writes routing) lives in ContextVars, copied into the
thread. The URL is resolved here and again by Django: a few microseconds. The body is read
before the thread starts, into a file that spills to disk past FILE_UPLOAD_MAX_MEMORY_SIZE, as
Django's ASGI handler reads it.
"""

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, cast

from a2wsgi.wsgi import build_environ
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


def _with_content_length(scope: Any, body: IO[bytes]) -> Any:
    """The scope with the length of the body read: Django's WSGI request reads CONTENT_LENGTH
    bytes and no more, so a chunked upload (no Content-Length) would otherwise reach the view
    empty."""
    if any(name == b"content-length" for name, _ in scope["headers"]):
        return scope
    length = body.seek(0, 2)
    body.seek(0)
    return {**scope, "headers": [*scope["headers"], (b"content-length", str(length).encode())]}


class _WholeResponses:
    """A WSGI application served to ASGI: each request whole in one of `workers` threads."""

    def __init__(self, application: Any, workers: int) -> None:
        self._application = application
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wsgi")

    async def __call__(self, scope: Any, body: IO[bytes], send: Any) -> None:
        loop = asyncio.get_running_loop()
        environ = build_environ(scope, cast(Any, body))  # any file will do for a2wsgi's Body
        respond = functools.partial(contextvars.copy_context().run, self._respond, environ, loop, send)
        whole = await loop.run_in_executor(self._threads, respond)
        if whole is not None:
            status, headers, content = whole
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content})

    def _respond(self, environ: Any, loop: asyncio.AbstractEventLoop, send: Any) -> Any:
        """(status, headers, body), or None once a streaming response is sent from this thread."""
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            # WSGI's write() callable is not returned: Django's handler returns its body.
            code = int(status.split(" ", 1)[0])
            started[:] = [code, [(name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers]]

        response = self._application(environ, start_response)
        try:
            if not getattr(response, "streaming", False):
                return (*started, b"".join(response))

            def send_from_thread(message: dict[str, Any]) -> None:
                asyncio.run_coroutine_threadsafe(send(message), loop).result()

            status, headers = started
            send_from_thread({"type": "http.response.start", "status": status, "headers": headers})
            for chunk in response:
                send_from_thread({"type": "http.response.body", "body": chunk, "more_body": True})
            send_from_thread({"type": "http.response.body", "body": b""})
            return None
        finally:
            response.close()  # request_finished, in the request's thread


class PostlineASGIHandler:
    def __init__(self) -> None:
        self._async_views = ASGIHandler()
        self._sync_views = _WholeResponses(WSGIHandler(), workers=settings.DB_POOL_SIZE)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not _serves_an_async_view(scope["path"]):
            # The whole body first, on the loop, as Django's ASGI handler reads it: a client that
            # leaves before sending all of it gets no response, where reading it from the thread
            # would hand the view an empty body (a 400 for a request nobody awaits).
            try:
                body = await self._async_views.read_body(receive)
            except RequestAborted:
                return
            with body:
                await self._sync_views(_with_content_length(scope, body), body, send)
        else:
            await self._async_views(scope, receive, send)
