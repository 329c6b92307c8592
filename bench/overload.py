"""Overload: a burst larger than a worker can hold, with bounded admission and with a long queue.

    python bench/overload.py                       # 48 requests at once on 1 worker x 1 model
    python bench/overload.py --burst 96 --queues 0 4 128

For each `--max-queue`, it starts `nosetrack serve --workers 1 --threads 1`, releases the burst at one
instant (each request on its own connection) and prints per status the count and the median and maximum
latency. With a short queue the excess is refused with 503 in milliseconds; with a long one every request
waits its turn and the last answer takes burst x inference time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from soak import DEFAULT_IMAGE, free_port, pick_image, wait_ready


def burst(url: str, image: bytes, size: int) -> list[tuple[int, float]]:
    """`size` requests released together; (status, milliseconds) for each."""
    barrier = threading.Barrier(size)
    results: list[tuple[int, float]] = []

    def post() -> None:
        barrier.wait()
        started = time.perf_counter()
        response = requests.post(url, data=image, headers={"Content-Type": "image/jpeg"}, timeout=120)
        results.append((response.status_code, (time.perf_counter() - started) * 1000))

    threads = [threading.Thread(target=post) for _ in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    return results


def run(max_queue: int, image: bytes, size: int) -> list[tuple[int, float]]:
    port = free_port()
    command = [sys.executable, "-m", "nosetrack.cli", "serve", "--port", str(port), "--workers", "1"]
    command += ["--threads", "1", "--max-queue", str(max_queue), "--log-file", "", "--log-level", "WARNING"]
    with tempfile.TemporaryDirectory(prefix="nosetrack-overload-") as log_dir:
        with open(Path(log_dir) / "server.err", "wb") as errors:
            server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            wait_ready(server, f"http://127.0.0.1:{port}/readyz", Path(log_dir))
            return burst(f"http://127.0.0.1:{port}/v1/nose", image, size)
        finally:
            server.terminate()
            server.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=48)
    parser.add_argument(
        "--queues", type=int, nargs="+", default=[2, 64], help="--max-queue values to compare"
    )
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    args = parser.parse_args(argv)
    image = pick_image(args.image).read_bytes()
    print(f"| max-queue | status | count | median ms | max ms |  (burst of {args.burst}, 1 worker x 1 model)")
    print("|---|---|---|---|---|")
    for max_queue in args.queues:
        results = run(max_queue, image, args.burst)
        for status in sorted({status for status, _ in results}):
            latencies = [ms for got, ms in results if got == status]
            median, worst = statistics.median(latencies), max(latencies)
            print(f"| {max_queue} | {status} | {len(latencies)} | {median:.0f} | {worst:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
