"""nosetrack's gunicorn worker: uvicorn's event loop serves the front door (front_door.py), with
nosetrack's protocols (http_protocol.py) and a readiness drain on SIGTERM.

gunicorn's arbiter forks the workers, restarts one that dies, and hands each the listening socket; uvicorn
(uvloop, httptools, the `websockets` framing) reads every connection in the loop, plain or TLS, keeps
connections alive, and hands the app whole requests and WebSocket messages.

Stopping: on SIGTERM the worker sets the server state's `stopping` event at once (readiness turns 503,
streams close with 1001, every answer from then says `Connection: close`), keeps accepting for
`--drain-delay` seconds so load balancers notice, then closes its listener and answers everything it
accepted before it exits (uvicorn's graceful shutdown, bounded by `--timeout`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, ClassVar

import uvloop
from gunicorn.arbiter import Arbiter
from uvicorn import Server
from uvicorn_worker import UvicornWorker

from ..config import Settings
from ..logs import LOGGER_NAME
from .http_protocol import DeadlineProtocol, StreamProtocol
from .memory import give_back_free_memory, limit_arenas

# state imports prometheus_client, which must wait for PROMETHEUS_MULTIPROC_DIR (gunicorn.py).
if TYPE_CHECKING:
    from .state import ServerState

logger = logging.getLogger(LOGGER_NAME)

# How long the server waits, at its shutdown, for streams to close themselves (they look every 0.25 s).
STREAMS_CLOSE_SECONDS = 2.0
# A worker idle this many ticks (0.1 s each) gives its free memory back, once per idle spell.
IDLE_TICKS_BEFORE_TRIM = 50


class DrainingServer(Server):
    """uvicorn's server, with SIGTERM's shutdown delayed by the drain."""

    def __init__(self, config, state: ServerState, drain_delay: float) -> None:
        super().__init__(config)
        self.state = state
        self.stopping = state.stopping
        self.drain_delay = drain_delay
        self.exit_at = float("inf")
        self.requests_at_last_tick = 0
        self.idle_ticks = 0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self.stopping.is_set():
            self.stopping.set()
            self.exit_at = time.monotonic() + self.drain_delay
            logger.info("Stopping: not ready; closing the listener in %g s", self.drain_delay)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        """Every 0.1 s: the end of the drain; once a worker has been idle a while, its free memory back."""
        if time.monotonic() >= self.exit_at:
            self.should_exit = True
        busy = self.server_state.total_requests != self.requests_at_last_tick or self.server_state.tasks
        self.requests_at_last_tick = self.server_state.total_requests
        self.idle_ticks = 0 if busy else self.idle_ticks + 1
        if self.idle_ticks == IDLE_TICKS_BEFORE_TRIM:
            give_back_free_memory()
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.take_queued_connections(sockets or [])
        # Streams close themselves with 1001 once `stopping` is set; uvicorn would close them with 1012.
        deadline = time.monotonic() + STREAMS_CLOSE_SECONDS
        while self.state.streams.held and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await super().shutdown(sockets)

    async def take_queued_connections(self, listeners: list[socket.socket]) -> None:
        """Accept what the kernel already queued before the listener closes: closing it would reset those
        connections, whose clients believe themselves accepted. Each is served like any other."""
        loop = asyncio.get_running_loop()
        for listener in listeners:
            while True:
                try:
                    sock, _ = listener.accept()
                except OSError:  # BlockingIOError above all: the queue is empty
                    break
                sock.setblocking(False)
                await loop.connect_accepted_socket(self.create_protocol, sock, ssl=self.config.ssl)

    def create_protocol(self) -> asyncio.Protocol:
        """A connection's protocol, as uvicorn's startup makes it for the connections it accepts."""
        return self.config.http_protocol_class(
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )


class HandshakeDeadlineLoop(uvloop.Loop):
    """uvloop's loop, whose TLS servers give a client `handshake_seconds` to finish its handshake (asyncio's
    default is 60 s, and uvicorn sets none): a stalled handshake costs a socket only until the request
    deadline, as a stalled request does."""

    handshake_seconds = 10.0

    async def create_server(self, *args, **kwargs):  # type: ignore[override]
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", self.handshake_seconds)
        return await super().create_server(*args, **kwargs)


class FrontDoorWorker(UvicornWorker):
    """A gunicorn worker running uvicorn with nosetrack's protocols and drain."""

    CONFIG_KWARGS: ClassVar[dict] = {
        "http": DeadlineProtocol,
        "ws": StreamProtocol,
        "lifespan": "on",
    }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # nosetrack's arbiter hands its settings over; plain `gunicorn -k` takes them from NOSETRACK_*.
        self.settings: Settings = getattr(self.app, "settings", None) or Settings.from_environment()
        s = self.settings
        self.config.ws_max_size = 2 * s.max_body_bytes  # beyond the body limit: a 413 in the stream
        self.config.ws_ping_interval = None  # the stream's own idle timeout and send deadline bound it
        self.config.timeout_graceful_shutdown = s.timeout
        self.config.timeout_keep_alive = s.keep_alive  # type: ignore[assignment]
        self.config.server_header = False

    def run(self) -> None:
        limit_arenas()  # before the request threads start, each of which could take an arena of its own

        def new_loop() -> HandshakeDeadlineLoop:
            loop = HandshakeDeadlineLoop()
            loop.handshake_seconds = self.settings.body_timeout
            return loop

        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        front_door = self.wsgi
        self.config.app = front_door
        server = DrainingServer(self.config, front_door.state, self.settings.drain_delay)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
