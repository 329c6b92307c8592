"""The server's own work per request, piece by piece: CPU microseconds of each, measured in one thread.

    python -m bench.levers --out bench/results          # about a minute

CPU time of a piece run many times in a loop barely moves with the machine's load, unlike requests/s, so
these figures can be compared across commits: each lever in bench/README.md names the pieces it changed and
their figures before and after. The pieces are those of a 640x480 /image-bin request: the Flask app around
the model (a stand-in model, so what remains is the app's own work and the JPEG decode), its log line, its
metrics, its JSON answer, the multipart read, gunicorn's parse of the request, and the answer's write to a
loopback socket.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench import stamp
from bench.loadgen import write_bodies
from bench.photos import make_photos

ROUNDS = 3


def cpu_us(piece: Callable[[], object], seconds: float = 1.0) -> float:
    """Median over ROUNDS of the thread CPU microseconds per call, each round about `seconds` long."""
    for _ in range(20):
        piece()
    results = []
    for _ in range(ROUNDS):
        calls, started, cpu = 0, time.monotonic(), time.thread_time()
        while time.monotonic() - started < seconds:
            for _ in range(50):
                piece()
            calls += 50
        results.append((time.thread_time() - cpu) / calls * 1e6)
    return sorted(results)[ROUNDS // 2]


class StandInModel:
    """Answers one face at once: the app's work without the model's."""

    def __init__(self, info) -> None:
        self.info = info

    def predict(self, image):
        from nosetrack.models.base import Box, Face, Prediction

        return Prediction(image.shape[1], image.shape[0], [Face(320.0, 200.0, 0.9, Box(260, 130, 120, 150))])


def app_pieces(body: bytes, content_type: str, log_file: str) -> dict[str, Callable[[], object]]:
    from nosetrack import load_model
    from nosetrack.answer import prediction_answer
    from nosetrack.config import Settings
    from nosetrack.images import CheckedImage
    from nosetrack.pool import ModelPool
    from nosetrack.server.app import create_app
    from nosetrack.server.payloads import _plain_file_part
    from nosetrack.server.state import server_state

    info = load_model().info
    app = create_app(
        Settings(log_file=log_file, model_instances=1), pools=[ModelPool(lambda: StandInModel(info), 1)]
    )
    state = server_state(app)
    boundary = content_type.split("boundary=", 1)[1]
    image = _plain_file_part(body, boundary, "image")
    prediction = StandInModel(info).predict(CheckedImage.check(image).decode().pixels)
    answer = {**prediction_answer(prediction), "latency_ms": 12.3, "request_id": "0" * 32}
    logger = logging.getLogger("nosetrack")

    def request_through_the_app() -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/image-bin",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "5000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
        }
        for _ in app(environ, lambda status, headers, exc_info=None: None):
            pass

    def decode_only() -> None:
        CheckedImage.check(image).decode()

    def werkzeug_form() -> None:
        from werkzeug.formparser import parse_form_data

        parse_form_data(
            {
                "wsgi.input": io.BytesIO(body),
                "CONTENT_TYPE": content_type,
                "CONTENT_LENGTH": str(len(body)),
                "REQUEST_METHOD": "POST",
            }
        )

    return {
        "app: /image-bin through Flask, stand-in model, decode included": request_through_the_app,
        "app: the JPEG decode alone": decode_only,
        "log line (terminal and file)": lambda: logger.info(
            "%s %s %d %.2f ms request_id=%s", "POST", "/image-bin", 200, 12.3, "0" * 32
        ),
        "metrics of one request (counter, histograms, timeline)": lambda: state.metrics.observe_request(
            "/image-bin", 200, 0.0123
        ),
        "timeline record alone": lambda: state.metrics.timeline.record(0.0123, False),
        "answer as JSON (Flask's provider)": lambda: app.json.dumps(answer),
        "multipart read, nosetrack's fast path": lambda: _plain_file_part(body, boundary, "image"),
        "multipart read, werkzeug's parser": werkzeug_form,
    }


def gunicorn_parse(request: bytes) -> Callable[[], object]:
    from gunicorn.config import Config
    from gunicorn.http import RequestParser

    config = Config()
    return lambda: next(RequestParser(config, [request], ("127.0.0.1", 1)))


def socket_write(pieces: list[bytes]) -> Callable[[], object]:
    """Write an answer as `pieces` (one send each) to a loopback TCP peer that reads it all."""
    listener = socket.create_server(("127.0.0.1", 0))
    writer = socket.create_connection(listener.getsockname())
    reader, _ = listener.accept()
    writer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    size = sum(len(piece) for piece in pieces)

    def drain() -> None:
        while reader.recv(1 << 16):
            pass

    threading.Thread(target=drain, daemon=True).start()

    def write() -> None:
        for piece in pieces:
            writer.sendall(piece)

    write.size = size  # type: ignore[attr-defined]
    return write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write levers.md and levers.json here")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each of the 3 rounds per piece")
    args = parser.parse_args()
    machine = stamp.machine()
    with tempfile.TemporaryDirectory(prefix="nosetrack-levers-") as folder:
        photo = make_photos(Path(folder) / "photos")["640x480"][0]
        content_type, (form,) = write_bodies("/image-bin", [photo], Path(folder) / "bodies")
        body = form.read_bytes()
        request = (
            f"POST /image-bin HTTP/1.1\r\nHost: 127.0.0.1:5000\r\nUser-Agent: wrk\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        metrics = Path(folder) / "metrics"
        metrics.mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)  # as under `nosetrack serve`: shared files
        stderr = os.dup(2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the log's terminal half, away from the report
        try:
            pieces = app_pieces(body, content_type, str(Path(folder) / "webserver.log"))
            head = (
                b"HTTP/1.1 200 OK\r\nServer: gunicorn\r\nDate: Fri, 27 Nov 2026 18:00:00 GMT\r\n"
                b"Connection: close\r\nContent-Type: application/json\r\nContent-Length: 520\r\n\r\n"
            )
            answer = b"{" + b"x" * 518 + b"}"
            pieces["gunicorn: parse the request's head and body"] = gunicorn_parse(request)
            pieces["answer to a loopback socket: head and body in two sends"] = socket_write([head, answer])
            pieces["answer to a loopback socket: in one send"] = socket_write([head + answer])
            figures = {name: cpu_us(piece, args.seconds) for name, piece in pieces.items()}
        finally:
            os.dup2(stderr, 2)
    stamp.finish(machine)
    lines = [
        "# The server's work per request, piece by piece",
        "",
        f"{stamp.describe(machine)}; thread CPU per call, median of {ROUNDS} rounds.",
        "",
        "| piece | CPU us per call |",
        "|---|---:|",
        *[f"| {name} | {us:.1f} |" for name, us in figures.items()],
        "",
    ]
    stamp.publish(args.out, "levers", lines, {"machine": machine, "us_per_call": figures})


if __name__ == "__main__":
    main()
