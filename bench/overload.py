"""Overload: a burst larger than a worker can hold, with bounded admission and with a long queue.

    python -m bench.overload                       # 48 requests at once on 1 worker x 1 model
    python -m bench.overload --burst 96 --queues 0 4 128

For each `--max-queue`, it starts `nosetrack serve --workers 1 --model-instances 1`, releases the burst at one
instant (each request on its own connection) and prints per status the count and the median and maximum
latency. With a short queue the excess is refused with 503 in milliseconds; with a long one every request
waits its turn and the last answer takes burst x inference time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench import stamp
from bench.soak import DEFAULT_IMAGE, pick_image
from nosetrack.launcher import NosetrackProcess


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
    with tempfile.TemporaryDirectory(prefix="nosetrack-overload-") as log_dir:
        server = NosetrackProcess(
            Path(log_dir),
            *("--workers", "1", "--model-instances", "1", "--max-queue", str(max_queue)),
            *("--log-level", "WARNING", "--drain-delay", "0"),
        )
        try:
            return burst(server.url + "/v1/nose", image, size)
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=48)
    parser.add_argument(
        "--queues", type=int, nargs="+", default=[2, 64], help="--max-queue values to compare"
    )
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    args = parser.parse_args(argv)
    image = pick_image(args.image).read_bytes()
    machine = stamp.machine()
    rows = []
    for max_queue in args.queues:
        results = run(max_queue, image, args.burst)
        for status in sorted({status for status, _ in results}):
            latencies = [ms for got, ms in results if got == status]
            median, worst = statistics.median(latencies), max(latencies)
            rows.append(f"| {max_queue} | {status} | {len(latencies)} | {median:.0f} | {worst:.0f} |")
    print(f"Measured: {stamp.describe(stamp.finish(machine))}")
    print(f"| max-queue | status | count | median ms | max ms |  (burst of {args.burst}, 1 worker x 1 model)")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
