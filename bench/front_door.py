"""The front door's targets, as an attacker and as a kept-alive client meet them, on `nosetrack serve`.

    python -m bench.front_door --out bench/results            # every scenario, plain and TLS (~4 minutes)
    python -m bench.front_door --scenarios held,keepalive      # some of them

Scenarios (each starts its own server with 2 workers, and stops it):
- trickle: 256 connections send a request's head, then one body byte every 4 s (each reconnects once
  answered), over http and over https; probes time /healthz and a prediction every second meanwhile.
- held: 16 clients send all but the last byte of a 20 MiB body and wait; the workers' RSS is sampled through
  the attack (peak growth) and 20 s after the last answer; every client's answer and /healthz are recorded.
- keepalive: 200 predictions one after another on one kept-alive connection; their median against the
  in-process pipeline's on the same 640x480 JPEG (decode and model, measured here).
- streams: /v1/nose latency with no stream, then beside 8 streams that each flood 1-byte messages; and 16
  squatters that send an undecodable byte every 2 s: how long until the server frees their places.
- bigphotos: 16 clients post a 14-megapixel photo over and over; each worker's RSS at its peak and after
  20 s idle (the workers keep two malloc arenas themselves; MALLOC_ARENA_MAX=2 in the environment is the
  same setting, for comparison with a run of an older commit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import socket
import ssl
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests
import websockets

from bench import stamp
from bench.photos import make_photos
from bench.slowloris import Probes, SlowClients
from bench.soak import process_tree_rss_bytes
from nosetrack.launcher import NosetrackProcess
from nosetrack.models import load_model

TARGETS = {
    "trickle": "/healthz <= 0.5 s and a prediction <= 2 s throughout, plain and TLS",
    "held": "peak growth <= 512 MiB, <= +256 MiB 20 s later, every client 4xx or 503, /healthz <= 0.5 s",
    "keepalive": "one connection for all 200; median within 1 ms of the in-process pipeline",
    "streams": "/v1/nose p99 with flooding streams <= 3x its quiet p99; squatters' places freed",
    "bigphotos": "RSS per worker <= 400 MiB under 16 clients of 14-megapixel photos; near baseline idle",
}
BIG_PHOTO_SIZE = (4320, 3240)  # 14 megapixels
HELD_BODY_BYTES = 20 * 1024 * 1024
HELD_CLIENTS = 16
IDLE_SECONDS = 5.0


def start(folder: Path, *args: str, tls: tuple[Path, Path] | None = None) -> NosetrackProcess:
    flags = ["--workers", "2", *args]
    if tls:
        flags += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
    return NosetrackProcess(
        folder, *flags, env={"NOSETRACK_DRAIN_DELAY": "0"}, ca_file=tls[0] if tls else None
    )


def make_certificate(folder: Path) -> tuple[Path, Path]:
    import sys

    sys.path.insert(0, str(stamp.REPOSITORY / "tests"))
    from certificates import make_certificate as make

    return make(folder)


def trickle(folder: Path, image: bytes, tls: bool, seconds: float) -> dict:
    certificate = make_certificate(folder) if tls else None
    server = start(folder, "--body-timeout", "10", tls=certificate)
    verify = str(certificate[0]) if certificate else True
    try:
        context = ssl.create_default_context(cafile=str(certificate[0])) if certificate else None
        slow = SlowClients(server.port, 256, tls=context)
        probes = Probes(server.url, image, interval=0.5, verify=verify)
        slow.start()
        time.sleep(2)
        since = time.monotonic()
        probes.start()
        time.sleep(seconds)
        until = time.monotonic()
        probes.stop()
        slow.stop()
    finally:
        server.stop()
    return {
        "tls": tls,
        "slow_clients": 256,
        "healthz": probes.summary("healthz", since, until),
        "predict": probes.summary("predict", since, until),
        "slow_answers": dict(slow.answers),
    }


def held(folder: Path) -> dict:
    server = start(folder, "--body-timeout", "10")
    baseline = process_tree_rss_bytes(server.process.pid)
    peak = baseline
    head = (
        "POST /v1/nose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {HELD_BODY_BYTES}\r\n\r\n"
    ).encode()
    answers: list[str] = []
    healthz: list[float] = []
    stop = threading.Event()

    def client() -> None:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
                sock.sendall(head)
                with contextlib.suppress(OSError):  # refused while sending: the answer is waiting
                    sock.sendall(b"\xff" * (HELD_BODY_BYTES - 1))
                answers.append(sock.recv(4096).split(b"\r\n", 1)[0].decode() or "closed without an answer")
        except OSError as error:
            answers.append(type(error).__name__)

    def probe() -> None:
        while not stop.wait(0.25):
            started = time.perf_counter()
            try:
                requests.get(server.url + "/healthz", timeout=10)
                healthz.append(time.perf_counter() - started)
            except requests.RequestException:
                healthz.append(float("inf"))

    try:
        threads = [threading.Thread(target=client) for _ in range(HELD_CLIENTS)]
        prober = threading.Thread(target=probe)
        prober.start()
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            peak = max(peak, process_tree_rss_bytes(server.process.pid))
            time.sleep(0.1)
        stop.set()
        prober.join()
        time.sleep(20)
        after = process_tree_rss_bytes(server.process.pid)
    finally:
        server.stop()
    mib = 1024 * 1024
    return {
        "clients": HELD_CLIENTS,
        "body_mib": HELD_BODY_BYTES / mib,
        "baseline_mib": baseline / mib,
        "peak_growth_mib": (peak - baseline) / mib,
        "growth_20s_later_mib": (after - baseline) / mib,
        "answers": {answer: answers.count(answer) for answer in sorted(set(answers))},
        "healthz_max_s": max(healthz) if healthz else None,
    }


def keepalive(folder: Path, image: bytes) -> dict:
    model = load_model()
    from nosetrack.images import decode_image

    for _ in range(20):
        model.predict(decode_image(image))
    in_process = []
    for _ in range(200):
        started = time.perf_counter()
        model.predict(decode_image(image))
        in_process.append(time.perf_counter() - started)
    server = start(folder)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.connect()
        sockets, latencies, statuses = set(), [], []
        for index in range(220):
            started = time.perf_counter()
            connection.request("POST", "/v1/nose", body=image, headers={"Content-Type": "image/jpeg"})
            response = connection.getresponse()
            response.read()
            if index >= 20:  # the first 20 warm the server
                latencies.append(time.perf_counter() - started)
                statuses.append(response.status)
                sockets.add(id(connection.sock))
        connection.close()
    finally:
        server.stop()
    return {
        "requests": len(latencies),
        "connections": len(sockets),
        "all_200": all(status == 200 for status in statuses),
        "median_ms": statistics.median(latencies) * 1000,
        "in_process_median_ms": statistics.median(in_process) * 1000,
    }


async def _flood(url: str, until: float) -> tuple[int, int]:
    """1-byte messages as fast as the server takes them until `until`; a stream closed for them (1008) is
    opened again, as an attacker would. (messages sent, streams opened)"""
    sent = opened = 0
    while time.monotonic() < until:
        try:
            async with websockets.connect(url, compression=None, max_size=None) as websocket:
                opened += 1

                async def drain(websocket=websocket) -> None:
                    async for _ in websocket:
                        pass

                reader = asyncio.create_task(drain())
                while time.monotonic() < until:
                    await websocket.send(b"\x00")
                    sent += 1
                    if sent % 64 == 0:
                        await asyncio.sleep(0)
                reader.cancel()
        except (websockets.ConnectionClosed, websockets.InvalidStatus, OSError):
            await asyncio.sleep(0.01)
    return sent, opened


async def _flood_all(url: str, seconds: float) -> list[tuple[int, int]]:
    until = time.monotonic() + seconds
    return list(await asyncio.gather(*(_flood(url, until) for _ in range(8))))


async def _squat(url: str) -> float:
    """Seconds until the server closes a stream that sends only undecodable bytes."""
    started = time.monotonic()
    try:
        async with websockets.connect(url, compression=None) as websocket:
            while time.monotonic() - started < IDLE_SECONDS * 6:
                await websocket.send(b"\x00")
                try:
                    await asyncio.wait_for(websocket.recv(), 2.0)
                    await asyncio.sleep(2.0)
                except TimeoutError:
                    pass
    except websockets.ConnectionClosed:
        pass
    return time.monotonic() - started


def _latencies(url: str, image: bytes, seconds: float) -> list[float]:
    session = requests.Session()
    values, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        session.post(url + "/v1/nose", data=image, headers={"Content-Type": "image/jpeg"}, timeout=30)
        values.append(time.perf_counter() - started)
    return values


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000


def streams(folder: Path, image: bytes, seconds: float) -> dict:
    server = start(folder, "--max-streams", "16", "--stream-idle-timeout", str(IDLE_SECONDS))
    ws_url = server.url.replace("http://", "ws://") + "/v1/track"
    try:
        quiet = _latencies(server.url, image, seconds)
        flood: list[tuple[int, int]] = []
        flooders = threading.Thread(target=lambda: flood.extend(asyncio.run(_flood_all(ws_url, seconds + 2))))
        flooders.start()
        time.sleep(1)
        flooded = _latencies(server.url, image, seconds)
        flooders.join(timeout=60)
        deadline = time.monotonic() + 30
        while _open_streams(server.url) and time.monotonic() < deadline:
            time.sleep(0.2)
        squatted = asyncio.run(_gather_squatters(ws_url))
        open_after = _open_streams(server.url)
    finally:
        server.stop()
    return {
        "quiet_p99_ms": _p99(quiet),
        "flooded_p99_ms": _p99(flooded),
        "ratio": _p99(flooded) / _p99(quiet),
        "flood_messages": sum(sent for sent, _ in flood),
        "flood_streams_opened": sum(opened for _, opened in flood),
        "squatters": len(squatted),
        "squatters_closed_after_s": max(squatted),
        "open_streams_after": open_after,
    }


def _open_streams(url: str) -> int:
    return round(requests.get(url + "/api/stats", timeout=10).json()["streams"]["open"])


async def _gather_squatters(url: str) -> list[float]:
    return list(await asyncio.gather(*(_squat(url) for _ in range(16))))


def worker_rss_mib(arbiter: int) -> list[float]:
    """Each worker's resident memory (the arbiter's children), MiB."""
    children = Path(f"/proc/{arbiter}/task/{arbiter}/children").read_text().split()
    return [process_tree_rss_bytes(int(pid)) / 1024 / 1024 for pid in children]


def big_photos(folder: Path, image: bytes, seconds: float, arenas: str | None) -> dict:
    import cv2
    import numpy as np

    pixels = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    resized = cv2.resize(pixels, BIG_PHOTO_SIZE, interpolation=cv2.INTER_CUBIC)
    big = cv2.imencode(".jpg", resized)[1].tobytes()
    env = {"NOSETRACK_DRAIN_DELAY": "0", **({"MALLOC_ARENA_MAX": arenas} if arenas else {})}
    server = NosetrackProcess(folder, "--workers", "2", env=env)
    baseline = worker_rss_mib(server.process.pid)
    peak = list(baseline)
    stop = threading.Event()
    answers: list[int] = []

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            response = session.post(server.url + "/v1/nose", data=big, headers={"Content-Type": "image/jpeg"})
            answers.append(response.status_code)

    try:
        threads = [threading.Thread(target=client) for _ in range(16)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            peak = [max(a, b) for a, b in zip(peak, worker_rss_mib(server.process.pid), strict=False)]
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        time.sleep(20)
        idle = worker_rss_mib(server.process.pid)
    finally:
        server.stop()
    return {
        "malloc_arena_max": arenas or "glibc default",
        "photo_bytes": len(big),
        "answers": {str(code): answers.count(code) for code in sorted(set(answers))},
        "baseline_mib": baseline,
        "peak_mib": peak,
        "idle_20s_mib": idle,
    }


def _per_worker(values: list[float]) -> str:
    return "/".join(f"{value:.0f}" for value in values)


def _big_photos_text(runs: list[dict]) -> str:
    return "; ".join(
        f"arenas {run['malloc_arena_max']}: peak {_per_worker(run['peak_mib'])} MiB per worker "
        f"(baseline {_per_worker(run['baseline_mib'])}), {_per_worker(run['idle_20s_mib'])} MiB 20 s idle; "
        f"answers {run['answers']}"
        for run in runs
    )


def _trickle_text(runs: list[dict]) -> str:
    return "; ".join(
        f"{'TLS' if run['tls'] else 'plain'}: /healthz max {run['healthz']['max_ms']:.0f} ms, prediction max "
        f"{run['predict']['max_ms']:.0f} ms ({run['predict']['count']} probes), slow clients answered "
        f"{run['slow_answers']}"
        for run in runs
    )


MEASURED = {
    "trickle": _trickle_text,
    "bigphotos": _big_photos_text,
    "held": lambda r: (
        f"peak growth {r['peak_growth_mib']:.0f} MiB, {r['growth_20s_later_mib']:+.0f} MiB 20 s later; "
        f"answers {r['answers']}; /healthz max {r['healthz_max_s']:.2f} s"
    ),
    "keepalive": lambda r: (
        f"{r['requests']} on {r['connections']} connection(s), all 200: {r['all_200']}; median "
        f"{r['median_ms']:.2f} ms against {r['in_process_median_ms']:.2f} ms in process "
        f"({r['median_ms'] - r['in_process_median_ms']:+.2f} ms)"
    ),
    "streams": lambda r: (
        f"p99 {r['quiet_p99_ms']:.0f} ms quiet, {r['flooded_p99_ms']:.0f} ms beside 8 flooding streams "
        f"({r['flood_messages']} messages over {r['flood_streams_opened']} streams, each closed after 32) "
        f"({r['ratio']:.2f}x); {r['squatters']} squatters closed within "
        f"{r['squatters_closed_after_s']:.1f} s (idle timeout {IDLE_SECONDS:g} s), "
        f"{r['open_streams_after']} streams open after"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="trickle,held,keepalive,streams,bigphotos")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each timed phase")
    parser.add_argument(
        "--image", type=Path, help="the JPEG to post (default: a 640x480 face, bench/photos.py)"
    )
    parser.add_argument("--out", type=Path, help="write front_door.md and front_door.json here")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.scenarios.split(",")]
    machine = stamp.machine()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="nosetrack-front-door-") as folder:
        image = (args.image or make_photos(Path(folder) / "photos")["640x480"][0]).read_bytes()
        for name in chosen:
            place = Path(folder) / name
            place.mkdir()
            if name == "trickle":
                results[name] = [
                    trickle(place / scheme, image, scheme == "https", args.seconds)
                    for scheme in ("http", "https")
                    if not (place / scheme).mkdir()
                ]
            elif name == "held":
                results[name] = held(place)
            elif name == "keepalive":
                results[name] = keepalive(place, image)
            elif name == "streams":
                results[name] = streams(place, image, args.seconds)
            elif name == "bigphotos":
                results[name] = [
                    big_photos(place / (arenas or "default"), image, args.seconds, arenas)
                    for arenas in (None, "2")
                    if not (place / (arenas or "default")).mkdir()
                ]
    stamp.finish(machine)
    lines = [
        "# The front door's targets",
        "",
        f"{stamp.describe(machine)}; `python -m bench.front_door`.",
        "",
        "| scenario | target | measured |",
        "|---|---|---|",
    ]
    for name, figures in results.items():
        lines.append(f"| {name} | {TARGETS[name]} | {MEASURED[name](figures)} |")
    stamp.publish(args.out, "front_door", lines, {"machine": machine, "results": results})


if __name__ == "__main__":
    main()
