"""Under ASGI a sync view's request runs whole in a thread, side by side with others, and an
async view's on the event loop (project/server/handler.py).

With Django's ASGI handler the two sync requests below would queue for the one thread it runs
sync views in: the first would wait at the barrier for a second that never starts.
"""

import asyncio
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from project.server.handler import PostlineASGIHandler

both_running = threading.Barrier(2, timeout=5)
threads: list[int] = []


def wait_for_the_other(request: HttpRequest) -> HttpResponse:
    assert isinstance(request, WSGIRequest)
    threads.append(threading.get_ident())
    both_running.wait()
    return HttpResponse("both ran")


async def on_the_loop(request: HttpRequest) -> HttpResponse:
    assert isinstance(request, ASGIRequest)
    return HttpResponse("async")


bodies: list[bytes] = []


@csrf_exempt
def echo(request: HttpRequest) -> HttpResponse:
    bodies.append(request.body)
    return HttpResponse(request.body)


def stream(request: HttpRequest) -> StreamingHttpResponse:
    threads.append(threading.get_ident())
    return StreamingHttpResponse(iter([b"one ", b"two"]))


urlpatterns = [
    path("both/", wait_for_the_other),
    path("async/", on_the_loop),
    path("echo/", echo),
    path("stream/", stream),
]


def http_scope(url: str, method: str = "GET") -> dict[str, object]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }


async def answer(application: PostlineASGIHandler, scope: dict[str, object], *chunks: bytes) -> tuple[int, bytes]:
    """Sends the body in `chunks` (none: an empty one), returns the status and the body."""
    exchange = ApplicationCommunicator(application, scope)
    chunks = chunks or (b"",)
    for number, chunk in enumerate(chunks, start=1):
        await exchange.send_input({"type": "http.request", "body": chunk, "more_body": number < len(chunks)})
    start = await exchange.receive_output(timeout=10)
    body = await exchange.receive_output(timeout=10)
    await exchange.wait(timeout=10)  # else a streaming thread may wait on an ended loop forever
    return start["status"], body["body"]


async def get(application: PostlineASGIHandler, url: str) -> tuple[int, bytes]:
    return await answer(application, http_scope(url))


@pytest.mark.urls("tests.test_asgi_views")
def test_two_sync_views_run_at_once_each_in_a_thread() -> None:
    threads.clear()
    both_running.reset()
    application = PostlineASGIHandler()

    async def two_at_once() -> list[tuple[int, bytes]]:
        return list(await asyncio.gather(get(application, "/both/"), get(application, "/both/")))

    assert asyncio.run(two_at_once()) == [(200, b"both ran")] * 2
    assert len(set(threads)) == 2
    assert threading.get_ident() not in threads


@pytest.mark.urls("tests.test_asgi_views")
def test_an_async_view_is_served_by_djangos_asgi_handler() -> None:
    assert asyncio.run(get(PostlineASGIHandler(), "/async/")) == (200, b"async")


@pytest.mark.urls("tests.test_asgi_views")
def test_a_path_no_view_answers_gets_djangos_404() -> None:
    assert asyncio.run(get(PostlineASGIHandler(), "/nothing/"))[0] == 404


@pytest.mark.urls("tests.test_asgi_views")
def test_a_body_sent_in_chunks_reaches_the_view_whole() -> None:
    async def post_in_two_chunks() -> tuple[int, bytes]:
        return await answer(PostlineASGIHandler(), http_scope("/echo/", "POST"), b'{"title": ', b'"two chunks"}')

    assert asyncio.run(post_in_two_chunks()) == (200, b'{"title": "two chunks"}')


@pytest.mark.urls("tests.test_asgi_views")
def test_a_client_that_leaves_before_its_whole_body_runs_no_view() -> None:
    bodies.clear()

    async def post_then_leave() -> bool:
        exchange = ApplicationCommunicator(PostlineASGIHandler(), http_scope("/echo/", "POST"))
        await exchange.send_input({"type": "http.request", "body": b'{"title": ', "more_body": True})
        await exchange.send_input({"type": "http.disconnect"})
        await exchange.wait(timeout=10)
        return await exchange.receive_nothing()

    assert asyncio.run(post_then_leave())
    assert bodies == []


@pytest.mark.urls("tests.test_asgi_views")
def test_a_response_is_finished_in_the_thread_that_ran_its_view() -> None:
    """request_finished hands the thread's database connection back to the pool: in any other
    thread it would hand back another's, or none."""
    threads.clear()
    finished_in: list[int] = []

    def record(**kwargs: object) -> None:
        finished_in.append(threading.get_ident())

    request_finished.connect(record)
    try:
        assert asyncio.run(get(PostlineASGIHandler(), "/echo/"))[0] == 200
    finally:
        request_finished.disconnect(record)
    assert len(finished_in) == 1
    assert finished_in[0] != threading.get_ident()


@pytest.mark.urls("tests.test_asgi_views")
def test_a_streaming_response_is_sent_chunk_by_chunk_from_its_thread() -> None:
    threads.clear()

    async def streamed() -> list[dict[str, object]]:
        exchange = ApplicationCommunicator(PostlineASGIHandler(), http_scope("/stream/"))
        await exchange.send_input({"type": "http.request", "body": b"", "more_body": False})
        messages = [await exchange.receive_output(timeout=10)]
        while messages[-1]["type"] == "http.response.start" or messages[-1].get("more_body"):
            messages.append(await exchange.receive_output(timeout=10))
        await exchange.wait(timeout=10)
        return messages

    start, *chunks = asyncio.run(streamed())
    assert start["status"] == 200
    assert [chunk["body"] for chunk in chunks] == [b"one ", b"two", b""]
    assert threads
    assert threads[0] != threading.get_ident()
