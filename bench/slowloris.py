"""A slow-body attack and the probes that watch a server through it (used by `python -m bench.soak`).

`SlowClients`: N connections that send a request's full headers, then trickle its body one byte every few
seconds; when the server answers one (a 408 at its body deadline) it reconnects, so the attack lasts.
`Probes`: /healthz and a normal prediction, one after the other every `interval` seconds, timed.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import statistics
import threading
import time
from collections import Counter

import requests

HEAD = b"POST /v1/nose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n"


class Background:
    """Work on a thread of its own, from `start` until `stop`."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def started(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


class SlowClients(Background):
    """`count` trickling connections to 127.0.0.1:`port`, from one thread, until `stop` is called."""

    def __init__(
        self, port: int, count: int, seconds_per_byte: float = 4.0, tls: ssl.SSLContext | None = None
    ) -> None:
        """`tls`: each connection finishes a TLS handshake first."""
        super().__init__()
        self.port, self.count, self.seconds_per_byte, self.tls = port, count, seconds_per_byte, tls
        self.answers: Counter[str] = Counter()  # status line (or what happened instead) -> count
        self.seconds_to_answer: list[float] = []  # from connecting to the server's answer

    def _connect(self, selector: selectors.BaseSelector, offset: float) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if self.tls:
                sock = self.tls.wrap_socket(sock, server_hostname="127.0.0.1")
            sock.sendall(HEAD)
        except OSError as error:
            self.answers[type(error).__name__] += 1
            return
        sock.setblocking(False)
        # (connected at, next byte due): the first bytes are spread so the trickle is even.
        selector.register(sock, selectors.EVENT_READ, [time.monotonic(), time.monotonic() + offset])

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for index in range(self.count):
                self._connect(selector, self.seconds_per_byte * index / self.count)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.1):
                    self._answered(selector, key)
                now = time.monotonic()
                for key in list(selector.get_map().values()):
                    if key.data[1] <= now:
                        key.data[1] = now + self.seconds_per_byte
                        with contextlib.suppress(OSError):
                            key.fileobj.send(b"x")
            for key in list(selector.get_map().values()):
                key.fileobj.close()

    def _answered(self, selector: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        sock = key.fileobj
        try:
            answer = sock.recv(4096)
        except ssl.SSLWantReadError:
            return  # a TLS session ticket, not an answer
        except OSError as error:
            answer, outcome = b"", type(error).__name__
        else:
            outcome = answer.split(b"\r\n", 1)[0].decode("latin-1") if answer else "closed without an answer"
        self.answers[outcome] += 1
        self.seconds_to_answer.append(time.monotonic() - key.data[0])
        selector.unregister(sock)
        sock.close()
        if not self._stop.is_set():
            self._connect(selector, self.seconds_per_byte)


class Probes(Background):
    """GET /healthz and POST `image` to /v1/nose every `interval` seconds, each on a fresh connection."""

    def __init__(self, url: str, image: bytes, interval: float = 1.0, verify: str | bool = True) -> None:
        """`verify`: the CA file of an https `url` (as requests takes it)."""
        super().__init__()
        self.url, self.image, self.interval, self.verify = url, image, interval, verify
        self.samples: list[tuple[float, str, float]] = []  # (when, "healthz" or "predict", ms or inf)

    def _timed(self, kind: str, call) -> None:
        started = time.perf_counter()
        try:
            ok = call().status_code == 200
        except requests.RequestException:
            ok = False
        elapsed = (time.perf_counter() - started) * 1000 if ok else float("inf")
        self.samples.append((time.monotonic(), kind, elapsed))

    def _run(self) -> None:
        headers = {"Content-Type": "image/jpeg", "Connection": "close"}
        while not self._stop.wait(self.interval):
            self._timed(
                "healthz", lambda: requests.get(self.url + "/healthz", timeout=10, verify=self.verify)
            )
            self._timed(
                "predict",
                lambda: requests.post(
                    self.url + "/v1/nose", data=self.image, headers=headers, timeout=30, verify=self.verify
                ),
            )

    def summary(self, kind: str, since: float, until: float) -> dict:
        """p50, p99 and max milliseconds of `kind` probes taken in [since, until); inf for a failed one."""
        values = sorted(ms for at, got, ms in self.samples if got == kind and since <= at < until)
        if not values:
            return {"count": 0}
        p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
        return {
            "count": len(values),
            "p50_ms": statistics.median(values),
            "p99_ms": p99,
            "max_ms": values[-1],
        }
