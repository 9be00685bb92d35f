"""gunicorn's uvicorn worker, taking new connections only in its turn (project.server.balance).

uvicorn hands the listening socket to its event loop, whose accept loop (libuv's under uvloop)
takes every connection queued at each wake-up: a burst of keep-alive connections then lands on
one worker (measured: 8 of 8 wrk connections in 4 of 18 runs, that worker at 0.8 of a core,
the other idle, a third less throughput). Here the worker watches the socket itself, accepts one
connection per wake-up, hands it to uvicorn's protocol as uvicorn's own server would
(`loop.connect_accepted_socket`), and watches only in its turn.
"""

import asyncio
import functools
import logging
import socket
import sys
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from project.server.balance import RECHECK_SECONDS, TakesTurns, Turn

logger = logging.getLogger("uvicorn.error")
# A worker publishes its count at each accept and as each connection ends; besides, a listening
# worker publishes it this often, and one waiting for its turn looks every RECHECK_SECONDS.
PUBLISH_SECONDS = 0.1


class _OneWritePerTurn:
    """A connection's transport that sends what is written to it in one turn of the event loop
    in one write: uvicorn writes a response's status line and headers, then its body, in two
    calls, two send() system calls and two TCP segments the client reads one by one."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _BalancedServer(Server):
    def __init__(self, config: Any, turn: Turn) -> None:
        super().__init__(config)
        self._turn = turn
        self._listeners: list[socket.socket] = []
        self._listening = False
        self._accepted = 0  # accepted and not yet in server_state.connections
        self._balancing: asyncio.Task[None] | None = None
        self._protocol: Any = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up (the lifespan) without listeners of its own; this worker's turns."""
        await super().startup(sockets=[])
        self._listeners = list(sockets or [])
        for listener in self._listeners:
            listener.setblocking(False)  # a wake-up shared with the other workers may find nothing
        self._protocol = functools.partial(
            self._counted_protocol(),
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        self._turn.serving(self._held())
        self._balancing = asyncio.create_task(self._balance())

    def _counted_protocol(self) -> type:
        """uvicorn's HTTP protocol, publishing this worker's count as each connection ends. A
        count published late lets this worker take the next burst whole: measured, both of wrk's
        2 connections on one worker in every run, as the previous run's had just closed."""
        server = self

        class CountedProtocol(self.config.http_protocol_class):  # type: ignore[name-defined]
            def connection_made(self, transport: Any) -> None:
                super().connection_made(_OneWritePerTurn(transport))

            def connection_lost(self, exc: Exception | None) -> None:
                super().connection_lost(exc)
                server._turn.publish(server._held())
                server._listen(True)

        return CountedProtocol

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._listen(False)
        self._turn.stopping()
        if self._balancing is not None:
            self._balancing.cancel()
        await super().shutdown(sockets=sockets)

    def _held(self) -> int:
        return len(self.server_state.connections) + self._accepted

    def _listen(self, wanted: bool) -> None:
        enabled = wanted and not self.should_exit and self._turn.mine(self._held())
        if enabled == self._listening:
            return
        loop = asyncio.get_running_loop()
        for listener in self._listeners:
            if enabled:
                loop.add_reader(listener.fileno(), self._accept, listener)
            else:
                loop.remove_reader(listener.fileno())
        self._listening = enabled

    async def _balance(self) -> None:
        while not self.should_exit:
            self._turn.publish(self._held())
            self._listen(True)
            await asyncio.sleep(PUBLISH_SECONDS if self._listening else RECHECK_SECONDS)

    def _accept(self, listener: socket.socket) -> None:
        try:
            connection, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return  # another worker took it
        except OSError as error:  # out of file descriptors, say: the next wake-up tries again
            logger.warning("accept failed: %s", error)
            return
        self._accepted += 1
        task = asyncio.get_running_loop().create_task(self._serve_connection(connection))
        self.server_state.tasks.add(task)
        task.add_done_callback(self.server_state.tasks.discard)
        self._turn.publish(self._held())
        self._listen(True)

    async def _serve_connection(self, connection: socket.socket) -> None:
        """The connection under uvicorn's HTTP protocol, as uvicorn's own listener starts it."""
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._protocol, connection)
        except OSError:
            connection.close()  # the client left before its connection was set up
        finally:
            self._accepted -= 1


class BalancedUvicornWorker(TakesTurns, UvicornWorker):
    async def _serve(self) -> None:
        """UvicornWorker._serve, with the balanced server."""
        self.config.app = self.wsgi
        server = _BalancedServer(config=self.config, turn=self.turn)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
