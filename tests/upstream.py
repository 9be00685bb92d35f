"""A real HTTP server on 127.0.0.1 standing in for a third party's API (the enrichment upstream).

Its behaviour is switched by the test through `mode`: fast, slow (delay seconds), error (500),
malformed (not JSON), array (JSON that is not an object). It counts the requests it answers.
"""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Upstream:
    url: str
    mode: str = "fast"
    delay: float = 0.0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def template(self) -> str:
        return f"{self.url}/profiles/{{user_id}}"


def _handler(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with upstream.lock:
                upstream.requests += 1
            if upstream.delay:
                time.sleep(upstream.delay)  # the third party being slow
            user_id = self.path.rstrip("/").rsplit("/", 1)[-1]
            status, body = {
                "fast": (200, json.dumps({"user_id": user_id, "reputation": 42}).encode()),
                "error": (500, b'{"error": "upstream broke"}'),
                "malformed": (200, b"{not json"),
                "array": (200, b"[1, 2, 3]"),
            }[upstream.mode]
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test asserts on counts, not on log lines."""

    return Handler


@contextmanager
def running_upstream() -> Iterator[Upstream]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    upstream = Upstream(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        server.shutdown()
        server.server_close()
