"""Which WebSocket server for WS /v1/track: round trip and server CPU per 640x480 JPEG frame, per candidate.

    python -m bench.websocket_libraries                      # 400 frames per candidate (~1 minute)
    python -m bench.websocket_libraries --frames 2000 --json ws.json

Every candidate answers each binary message with the same ~700-byte JSON and runs no model, so the figures
are the WebSocket layer's own cost: one client (the `websockets` library, in this process) sends a frame,
waits for its answer, and sends the next. CPU is the server's process tree (from /proc) divided by the frames.

- nosetrack's own layer (`nosetrack.server.stream`: wsproto framing, one thread per socket) under gunicorn's
  gthread worker, as `nosetrack serve` runs it;
- flask-sock 0.7 / simple-websocket 1.1 under the same gthread worker (a reader thread per socket); its
  server accepts permessage-deflate, which every browser and the `websockets` client offer, so it runs twice:
  as clients connect by default (deflate) and with compression off;
- gunicorn 27's own asgi worker with a bare ASGI app (a WSGI Flask app would need an ASGI adapter there);
- the `websockets` library's asyncio server alone, without WSGI or Flask: the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.photos import make_photos
from bench.procstats import sample_tree
from nosetrack.launcher import free_port

HERE = Path(__file__).resolve().parent
ANSWER = json.dumps(
    {
        "x": 0.4406,
        "y": 0.2466,
        "nose": {"x": 225.6, "y": 126.3},
        "score": 0.93,
        "box": {"x": 170.1, "y": 46.0, "width": 128.5, "height": 160.2},
        "detected": True,
        "faces": [{"id": 1, "tracked": True, "nose_raw": {"x": 225.1, "y": 126.9}}],
        "image": {"width": 640, "height": 480},
        "timestamp": 12.345,
        "frame": 1234,
        "dropped": 0,
        "model": {"name": "nosetrack-facemesh", "version": "mediapipe-0.10.21"},
        "latency_ms": 3.21,
    }
)
WARM_UP_FRAMES = 20


def nosetrack_app():
    """A Flask app whose /ws answers every frame through nosetrack's own WebSocket layer."""
    from flask import Flask, request

    from nosetrack.server.stream.handshake import Upgrade, connected_socket, upgrade_headers
    from nosetrack.server.stream.websocket import Binary, WebSocket

    app = Flask(__name__)

    def answer_frames(sock) -> None:
        websocket = WebSocket(sock, 20 * 1024 * 1024, 65536, send_timeout=10.0)
        while websocket.open:
            for message in websocket.read(30.0) or ():
                if isinstance(message, Binary):
                    websocket.send_text(ANSWER)
        websocket.close()

    @app.get("/ws", websocket=True)
    def ws():
        return Upgrade(upgrade_headers(request.headers), connected_socket(request.environ), answer_frames)

    return app


def flask_sock_app():
    from flask import Flask
    from flask_sock import Sock

    app = Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": 20 * 1024 * 1024}
    sock = Sock(app)

    @sock.route("/ws")
    def ws(websocket):
        while True:
            websocket.receive()
            websocket.send(ANSWER)

    return app


async def asgi_app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": ANSWER})
        else:
            return


def serve_websockets(port: int) -> None:
    import asyncio

    from websockets.asyncio.server import serve

    async def answer(connection):
        async for _ in connection:
            await connection.send(ANSWER)

    async def main():
        async with serve(answer, "127.0.0.1", port, compression=None, max_size=None):
            await asyncio.get_running_loop().create_future()

    asyncio.run(main())


def gunicorn(app: str, worker_class: str) -> list[str]:
    return [
        *(sys.executable, "-m", "gunicorn", "--chdir", str(HERE), "--workers", "1"),
        *("--worker-class", worker_class, "--threads", "4", "--log-level", "warning", app),
    ]


NOSETRACK = gunicorn("websocket_libraries:nosetrack_app()", "gthread")
FLASK_SOCK = gunicorn("websocket_libraries:flask_sock_app()", "gthread")
# name, server command (the port is appended as --bind or an argument), client compression
CANDIDATES = [
    ("nosetrack (wsproto), gunicorn gthread", NOSETRACK, None),
    ("flask-sock, gunicorn gthread, deflate", FLASK_SOCK, "deflate"),
    ("flask-sock, gunicorn gthread", FLASK_SOCK, None),
    ("gunicorn asgi worker (ASGI app)", gunicorn("websocket_libraries:asgi_app", "asgi"), None),
    ("websockets asyncio (no WSGI)", [sys.executable, __file__, "--serve-websockets"], None),
]


def start(command: list[str], port: int, log: Path) -> subprocess.Popen:
    if "gunicorn" in command:
        command = [*command[:-1], "--bind", f"127.0.0.1:{port}", command[-1]]
    else:
        command = [*command, str(port)]
    with open(log, "wb") as errors:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)


def connect_when_up(url: str, compression: str | None, seconds: float = 30.0):
    from websockets.sync.client import connect

    deadline = time.monotonic() + seconds
    while True:
        try:
            return connect(url, compression=compression, max_size=None, open_timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def measure(command: list[str], compression: str | None, frame: bytes, frames: int) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nosetrack-wslib-") as folder:
        server = start(command, port, Path(folder) / "server.err")
        try:
            with connect_when_up(f"ws://127.0.0.1:{port}/ws", compression) as websocket:
                for _ in range(WARM_UP_FRAMES):
                    websocket.send(frame)
                    websocket.recv(timeout=10)
                cpu_before = sum(s.cpu_seconds for s in sample_tree(server.pid))
                client_before = time.process_time()
                round_trips = []
                for _ in range(frames):
                    started = time.perf_counter()
                    websocket.send(frame)
                    websocket.recv(timeout=10)
                    round_trips.append((time.perf_counter() - started) * 1000.0)
                client_cpu = time.process_time() - client_before
                server_cpu = sum(s.cpu_seconds for s in sample_tree(server.pid)) - cpu_before
        finally:
            server.terminate()
            server.wait(timeout=30)
    round_trips.sort()
    return {
        "round_trip_p50_ms": statistics.median(round_trips),
        "round_trip_p99_ms": round_trips[int(0.99 * (len(round_trips) - 1))],
        "server_cpu_ms_per_frame": server_cpu * 1000.0 / frames,
        "client_cpu_ms_per_frame": client_cpu * 1000.0 / frames,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=400, help="frames per candidate (default 400)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--serve-websockets", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_websockets:
        serve_websockets(args.serve_websockets)
        return 0
    with tempfile.TemporaryDirectory(prefix="nosetrack-wslib-photos-") as folder:
        frame = make_photos(Path(folder))["640x480"][0].read_bytes()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    print(f"{args.frames} frames of {len(frame) // 1024} kB, one client, lockstep; commit {commit.strip()}")
    print(f"load average at start {os.getloadavg()}\n")
    print(f"| {'candidate':<40} | round trip p50 ms | p99 ms | server CPU ms/frame | client CPU ms/frame |")
    print(f"|{'-' * 42}|---:|---:|---:|---:|")
    results = {}
    for name, command, compression in CANDIDATES:
        try:
            result = measure(command, compression, frame, args.frames)
        except OSError as error:  # e.g. a gunicorn before 27 has no asgi worker
            print(f"| {name:<40} | did not start: {error} |", flush=True)
            continue
        results[name] = result
        print(
            f"| {name:<40} | {result['round_trip_p50_ms']:.2f} | {result['round_trip_p99_ms']:.2f} "
            f"| {result['server_cpu_ms_per_frame']:.3f} | {result['client_cpu_ms_per_frame']:.3f} |",
            flush=True,
        )
    print(f"\nload average at end {os.getloadavg()}")
    if args.json:
        stamp = {"commit": commit.strip(), "load_average_end": os.getloadavg(), "frame_bytes": len(frame)}
        args.json.write_text(json.dumps({**stamp, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
