"""nosetrack's gunicorn worker: one event loop reads whole requests, a pool of threads runs them.

gunicorn's gthread worker gives each connection to a thread as soon as it is accepted, and the thread then
waits on a blocking socket for the request. A client that sent its headers and trickled its body held that
thread until the body deadline, and 64 such clients left no thread for anyone, not even /healthz. Here the
worker's main thread reads every connection without blocking, keeps each request's bytes until they are
whole (`framing.IncomingRequest`), and only then hands the request to a thread. A slow client costs a
socket and the bytes it has sent so far; threads, and the models they lease, only ever see whole requests.

The rest stays gunicorn's: the arbiter (forking, signals, hooks), the HTTP parser and the response writer,
run on the whole request's bytes, and its answers to malformed HTTP. Each connection carries one request.

What the app and a socket handler can rely on (docs/design.md says the same):
- `environ["wsgi.input"]` holds the whole body, already received. When the request did not arrive within
  `--body-timeout` of its connection, reading past what came raises `RequestTimeout` (408).
- `environ[STOPPING]` is a `threading.Event`, set when the server begins to stop (SIGTERM).
- A WebSocket upgrade (a request with `Upgrade: websocket`) runs on a thread of its own, never one of the
  request threads that predictions need, at most `MAX_SOCKET_SESSIONS` per worker. Its
  `environ["gunicorn.socket"]` is the connection, blocking and without a timeout; nothing after the request's
  head has been read from it. The session lasts until the handler returns (or raises StopIteration, as
  flask-sock does); the worker then closes the socket.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

from gunicorn import http
from gunicorn.http import wsgi
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.base import Worker
from werkzeug.exceptions import RequestTimeout

from ..config import Settings
from ..logs import LOGGER_NAME
from .errors import error_json
from .framing import IncomingRequest

logger = logging.getLogger(LOGGER_NAME)

# Open connections per worker (reading, answering, lingering); beyond, new ones wait in the kernel's queue.
MAX_CONNECTIONS = 1000
MAX_SOCKET_SESSIONS = 64
RECEIVE_BYTES = 256 * 1024
ACCEPT_PAUSE_SECONDS = 0.5
SILENT_SECONDS = 2.0
# After an answer, how long unread bytes from the client are drained before the socket is closed: closing
# with bytes unread makes the kernel send a reset, which can destroy the answer before the client reads it.
LINGER_SECONDS = 2.0
LINGER_BYTES = 256 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# The environ key of a threading.Event, set when the server begins to stop (SIGTERM).
STOPPING = "nosetrack.stopping"
READING, RUNNING, LINGERING, CLOSED = range(4)


class Connection:
    """One accepted socket, from its first byte to its close."""

    __slots__ = ("client", "deadline", "listener", "request", "sock", "state", "timed_out", "told_continue")

    def __init__(self, sock: socket.socket, client: Any, listener: Any, deadline: float, request) -> None:
        self.sock = sock
        self.client = client
        self.listener = listener
        self.deadline = deadline
        self.request: IncomingRequest = request
        self.state = READING
        self.timed_out = False
        self.told_continue = False


class UnfinishedBody:
    """The body of a request whose deadline passed: it reads as far as it came, then raises 408."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def _checked(self, data: bytes, size: int | None) -> bytes:
        if not data and size != 0:
            raise RequestTimeout("The request body did not arrive in time.")
        return data

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._checked(self._body.read(size), size)
        except NoMoreData:
            raise RequestTimeout("The request body did not arrive in time.") from None

    def readline(self, size: int | None = -1) -> bytes:
        try:
            return self._checked(self._body.readline(size), size)
        except NoMoreData:
            raise RequestTimeout("The request body did not arrive in time.") from None

    def __iter__(self):
        return iter(self.readline, b"")


def canned_answer(status: int, code: str, message: str) -> bytes:
    """A whole HTTP answer in nosetrack's error shape, for what the worker refuses before any app sees it."""
    body = error_json(code, message)
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1") + body


class BufferingWorker(Worker):
    """Reads requests in the main thread (a selector), runs whole ones on `threads` threads."""

    def init_process(self) -> None:
        # nosetrack's arbiter hands its settings over; plain `gunicorn -k` takes them from NOSETRACK_*.
        settings = getattr(self.app, "settings", None) or Settings.from_environment()
        self.body_timeout = settings.body_timeout
        self.max_body_bytes = settings.max_body_bytes
        self.drain_delay = settings.drain_delay
        self.stopping = threading.Event()
        self.selector = selectors.DefaultSelector()
        self.pool = ThreadPoolExecutor(self.cfg.threads, thread_name_prefix="nosetrack-request")
        self.listener_names = {listener: listener.getsockname() for listener in self.sockets}
        self.by_deadline: deque[Connection] = deque()  # reading connections, oldest first
        self.lingering: deque[Connection] = deque()
        self.handed_back: deque[Connection] = deque()  # from threads: answered, to linger in the loop
        self.open = 0  # connections the worker holds (guarded by the lock)
        self.running = 0  # requests on the request threads
        self.sessions = 0  # socket handlers on threads of their own
        self.accepting = False
        self.listening = True
        self.stop_requested = False
        self.drain_until = self.give_up_at = float("inf")
        self.accept_resumes_at = 0.0  # after the process ran out of file descriptors
        self.lock = threading.Lock()  # guards open, running, sessions, handed_back, wake_on_finish, states
        self.wake_on_finish = False
        super().init_process()

    # Signals and waking up ------------------------------------------------------------------------------

    def handle_quit(self, sig, frame) -> None:
        """SIGINT, SIGQUIT: stop at once, without waiting for the request threads."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        super().handle_quit(sig, frame)

    def handle_exit(self, sig, frame) -> None:
        """SIGTERM: start the readiness drain. Only a flag here; the loop (woken by the signal) acts on it."""
        self.stop_requested = True

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe: the loop is awake anyway
            os.write(self.PIPE[1], b".")

    def on_wake(self, pipe: int) -> None:
        try:
            while os.read(pipe, 4096):
                pass
        except OSError:
            pass
        with self.lock:
            handed_back, self.handed_back = self.handed_back, deque()
        for conn in handed_back:
            self.linger(conn)

    # The loop -----------------------------------------------------------------------------------------

    def run(self) -> None:
        self.selector.register(self.PIPE[0], selectors.EVENT_READ, self.on_wake)
        for listener in self.sockets:
            listener.setblocking(False)
        while True:
            self.notify()
            now = time.monotonic()
            if self.stop_requested and not self.stopping.is_set():
                self.begin_drain(now)
            if self.listening and now >= self.drain_until:
                self.close_listeners()
            self.set_accepting(self.listening and self.has_room())
            if not self.listening:
                self.close_silent()
                if self.idle():
                    break
            if now >= self.give_up_at or not self.is_parent_alive():
                break
            for key, _ in self.selector.select(self.next_timeout(now)):
                key.data(key.fileobj)
            self.expire(time.monotonic())
        self.pool.shutdown(wait=False)
        for conn in list(self.lingering):
            self.forget(conn)

    def next_timeout(self, now: float) -> float:
        soonest = min(1.0, self.drain_until - now) if self.listening else 1.0
        for queue in (self.by_deadline, self.lingering):
            if queue:
                soonest = min(soonest, queue[0].deadline - now)
        return max(soonest, 0.0)

    def has_room(self) -> bool:
        """Accept while the threads have room: a full worker leaves new connections to the others."""
        if time.monotonic() < self.accept_resumes_at:
            return False
        with self.lock:
            room = self.running < self.cfg.threads and self.open < MAX_CONNECTIONS
            self.wake_on_finish = not room or self.stopping.is_set()
        return room

    def idle(self) -> bool:
        with self.lock:
            return self.running == 0 and self.sessions == 0 and not self.by_deadline_reading()

    def by_deadline_reading(self) -> bool:
        return any(conn.state == READING for conn in self.by_deadline)

    def is_parent_alive(self) -> bool:
        return self.ppid == os.getppid()

    def set_accepting(self, accepting: bool) -> None:
        if accepting == self.accepting:
            return
        for listener in self.sockets:
            if accepting:
                self.selector.register(listener, selectors.EVENT_READ, self.accept)
            else:
                self.selector.unregister(listener)
        self.accepting = accepting

    # Stopping -----------------------------------------------------------------------------------------

    def begin_drain(self, now: float) -> None:
        """Readiness turns false at once; the listener stays open `drain_delay` seconds more."""
        self.stopping.set()
        with self.lock:
            self.wake_on_finish = True
        self.drain_until = now + self.drain_delay
        self.give_up_at = now + self.cfg.graceful_timeout
        logger.info("Stopping: not ready; closing the listener in %g s", self.drain_delay)

    def close_listeners(self) -> None:
        """Take every connection already waiting in the kernel's queue, then close the listener."""
        self.set_accepting(False)
        for listener in self.sockets:
            while self.accept(listener):
                pass
            listener.close()
        self.listening = False
        with self.lock:
            self.wake_on_finish = True

    def close_silent(self) -> None:
        """Once the listener is closed, a connection that has sent nothing for SILENT_SECONDS (a browser's
        preconnection) asked nothing to answer: it is closed rather than waited for until its deadline. One
        accepted a moment ago may still be sending its request, and is answered."""
        silent_since = time.monotonic() - SILENT_SECONDS
        for conn in self.by_deadline:
            if (
                conn.state == READING
                and not conn.request.data
                and conn.deadline - self.body_timeout < silent_since
            ):
                self.forget(conn)

    # Reading ------------------------------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> bool:
        try:
            sock, client = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return False
        except OSError as error:  # EMFILE, ENFILE, ENOBUFS: wait for sockets to close rather than spin
            logger.warning("Not accepting for %g s: %s", ACCEPT_PAUSE_SECONDS, error)
            self.accept_resumes_at = time.monotonic() + ACCEPT_PAUSE_SECONDS
            return False
        sock.setblocking(False)
        deadline = time.monotonic() + self.body_timeout
        conn = Connection(
            sock, client, self.listener_names[listener], deadline, IncomingRequest(self.max_body_bytes)
        )
        with self.lock:
            self.open += 1
        self.by_deadline.append(conn)
        self.read(conn)
        if conn.state == READING:
            self.selector.register(sock, selectors.EVENT_READ, lambda _, conn=conn: self.read(conn))
        return True

    def read(self, conn: Connection) -> None:
        request = conn.request
        while True:
            try:
                chunk = conn.sock.recv(RECEIVE_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                chunk = b""
            if not chunk:  # the client left before its request was whole: nobody to answer
                self.forget(conn)
                return
            request.add(chunk)
            if request.whole:
                self.dispatch(conn)
                return
            if request.head_too_large:
                self.answer_here(
                    conn, 431, "request_header_fields_too_large", "The request's head is too large."
                )
                return
            if len(chunk) < RECEIVE_BYTES:
                break
        if request.head and request.head.expects_continue and not conn.told_continue:
            conn.told_continue = True
            with contextlib.suppress(OSError):
                conn.sock.send(CONTINUE)

    def expire(self, now: float) -> None:
        """Deadlines: a request not whole in time is answered 408; a lingering socket is closed."""
        while self.by_deadline and (
            self.by_deadline[0].state != READING or self.by_deadline[0].deadline <= now
        ):
            conn = self.by_deadline.popleft()
            if conn.state != READING:
                continue
            if not conn.request.data:
                self.forget(conn)  # connected, never asked anything
            elif conn.request.head is None:
                self.answer_here(conn, 408, "request_timeout", "The request did not arrive in time.")
            else:
                conn.timed_out = True  # the app answers 408 when it reads past what came
                self.dispatch(conn)
        while self.lingering and (self.lingering[0].state != LINGERING or self.lingering[0].deadline <= now):
            self.forget(self.lingering.popleft())

    def answer_here(self, conn: Connection, status: int, code: str, message: str) -> None:
        """Answer from the loop, for a request no app can take (its head never came whole)."""
        self.unregister(conn)
        conn.state = RUNNING  # out of the reading queue
        with contextlib.suppress(OSError):
            conn.sock.send(canned_answer(status, code, message))
        logger.info("- - %d (%s) from %s", status, code, conn.client)
        self.linger(conn)

    # Running ------------------------------------------------------------------------------------------

    def dispatch(self, conn: Connection) -> None:
        self.unregister(conn)
        head = conn.request.head
        websocket = head is not None and head.websocket
        with self.lock:
            if websocket and self.sessions >= MAX_SOCKET_SESSIONS:
                refused = True
            else:
                refused = False
                conn.state = RUNNING
                if websocket:
                    self.sessions += 1
                else:
                    self.running += 1
        if refused:
            message = f"This worker already holds {MAX_SOCKET_SESSIONS} socket sessions. Retry shortly."
            self.answer_here(conn, 503, "overloaded", message)
        elif websocket:
            threading.Thread(
                target=self.serve, args=(conn, True), name="nosetrack-socket", daemon=True
            ).start()
        else:
            self.pool.submit(self.serve, conn, False)

    def serve(self, conn: Connection, session: bool) -> None:
        """On a thread: run the app on the whole request, write its answer, close or hand back to linger."""
        sock = conn.sock
        linger = False
        try:
            sock.setblocking(True)
            if not session:
                sock.settimeout(self.body_timeout)  # a client that does not take its answer frees the thread
            self.run_app(conn)
            conn.request = None  # the bytes are no longer needed; the connection may wait in by_deadline
            linger = self.close_after_answer(conn, session)
        except Exception:
            logger.exception("Worker failed on a request from %s", conn.client)
            self.close(conn)
        with self.lock:
            if session:
                self.sessions -= 1
            else:
                self.running -= 1
            if linger:
                self.handed_back.append(conn)
            wake = linger or self.wake_on_finish
        if wake:
            self.wake()

    def run_app(self, conn: Connection) -> None:
        sock, req, resp = conn.sock, None, None
        try:
            parser = http.RequestParser(self.cfg, [bytes(conn.request.data)], conn.client)
            req = next(parser)
            if conn.told_continue:
                req._expected_100_continue = False  # the loop already said 100 Continue
            resp, environ = wsgi.create(req, sock, conn.client, conn.listener, self.cfg)
            environ["wsgi.multithread"] = True
            environ[STOPPING] = self.stopping
            if conn.timed_out:
                environ["wsgi.input"] = UnfinishedBody(environ["wsgi.input"])
            resp.force_close()
            self.nr += 1
            answer = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(answer, environ["wsgi.file_wrapper"]):
                    resp.write_file(answer)
                else:
                    for part in answer:
                        resp.write(part)
                resp.close()
            finally:
                if hasattr(answer, "close"):
                    answer.close()
        except StopIteration:
            pass  # a socket handler is done with the connection (flask-sock ends a session this way)
        except (NoMoreData, TimeoutError):
            pass  # the client left, or did not take its answer in time
        except OSError as error:
            if error.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                logger.exception("Socket error on a request from %s", conn.client)
        except Exception as error:
            if resp is not None and resp.headers_sent:
                logger.exception("Error after the answer began, request from %s", conn.client)
            else:
                self.handle_error(req, sock, conn.client, error)

    # Closing ------------------------------------------------------------------------------------------

    def close_after_answer(self, conn: Connection, session: bool) -> bool:
        """Close now when the client sent nothing more; True when unread bytes call for lingering."""
        if session:
            self.close(conn, shutdown=True)
            return False
        try:
            conn.sock.setblocking(False)
            unread = conn.sock.recv(LINGER_BYTES)
        except OSError:  # BlockingIOError above all: nothing unread
            unread = b""
        if not unread:
            self.close(conn)
        return bool(unread)

    def linger(self, conn: Connection) -> None:
        """In the loop: drain what the client still sends (at most LINGER_SECONDS), then close."""
        self.unregister(conn)
        conn.state = LINGERING
        conn.deadline = time.monotonic() + LINGER_SECONDS
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(conn)
            return
        self.lingering.append(conn)
        self.selector.register(conn.sock, selectors.EVENT_READ, lambda _, conn=conn: self.drain(conn))

    def drain(self, conn: Connection) -> None:
        try:
            while conn.sock.recv(LINGER_BYTES):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.forget(conn)

    def unregister(self, conn: Connection) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)

    def forget(self, conn: Connection) -> None:
        """In the loop: stop watching the socket, and close it."""
        self.unregister(conn)
        self.close(conn)

    def close(self, conn: Connection, shutdown: bool = False) -> None:
        """Close the socket: from the loop, or from the thread that answered on it (unwatched meanwhile)."""
        with self.lock:
            if conn.state == CLOSED:
                return
            conn.state = CLOSED
            self.open -= 1
        if shutdown:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        conn.sock.close()
