"""Soak test: `nosetrack serve` under steady load for minutes; errors and memory growth after warm-up.

    python bench/soak.py --minutes 10 --clients 32            # the target run: 0 errors, RSS growth < 10 %
    python bench/soak.py --minutes 2 --warm-up 30 --json soak.json

It starts the server itself (so it can read the memory of the arbiter and its workers from /proc), sends
the same photograph from `--clients` threads with keep-alive connections to /v1/nose, samples the server's
total RSS every few seconds, and prints a Markdown table. The exit status is 1 when a target is missed.
The client threads share the machine with the server: on a small machine they take part of its CPU.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from nosetrack.config import Settings

SAMPLE_SECONDS = 5.0
DEFAULT_IMAGE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (the gunicorn arbiter and workers)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(
                int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS")
            )
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total


def start_server(port: int, workers: int, model_instances: int, log_dir: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "nosetrack.cli", "serve", "--port", str(port), "--workers", str(workers)]
    command += [
        "--model-instances",
        str(model_instances),
        "--log-file",
        str(log_dir / "soak-server.log"),
        "--log-level",
        "WARNING",
    ]
    with open(log_dir / "soak-server.err", "wb") as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        wait_ready(process, f"http://127.0.0.1:{port}/readyz", log_dir)
    except BaseException:
        process.terminate()
        process.wait(timeout=60)
        raise
    return process


def wait_ready(process: subprocess.Popen, url: str, log_dir: Path, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}; see {log_dir}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or too busy starting to answer
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server did not become ready in {seconds:g} s")


class Load:
    """`clients` threads posting one image in a loop until `stop_at`; counts outcomes and latencies."""

    def __init__(self, url: str, image: bytes, clients: int, stop_at: float) -> None:
        self.url, self.image, self.stop_at = url, image, stop_at
        self.outcomes: Counter[str] = Counter()
        self.latencies: list[float] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        with requests.Session() as session:
            while time.monotonic() < self.stop_at:
                started = time.perf_counter()
                try:
                    response = session.post(
                        self.url, data=self.image, headers={"Content-Type": "image/jpeg"}, timeout=30
                    )
                    outcome = str(response.status_code)
                except requests.RequestException as error:
                    outcome = type(error).__name__
                with self._lock:
                    self.outcomes[outcome] += 1
                    self.latencies.append(time.perf_counter() - started)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def rss_baseline_and_final(
    samples: list[tuple[float, int]], warm_up: float, duration: float
) -> tuple[float, float, list[int]]:
    """Median RSS of the first and of the last window under load after warm-up (a third of that time, at
    most a minute each), so one sample taken mid-allocation does not decide the verdict."""
    loaded = [(at, rss) for at, rss in samples if warm_up <= at < duration] or samples[-1:]
    window = min(60.0, (duration - warm_up) / 3)
    first = [rss for at, rss in loaded if at < warm_up + window] or [loaded[0][1]]
    last = [rss for at, rss in loaded if at >= duration - window] or [loaded[-1][1]]
    return statistics.median(first), statistics.median(last), [rss for _, rss in loaded]


def soak(args: argparse.Namespace) -> dict:
    image = args.image.read_bytes()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nosetrack-soak-") as log_dir:
        server = start_server(port, args.workers, args.model_instances, Path(log_dir))
        try:
            started = time.monotonic()
            load = Load(f"http://127.0.0.1:{port}/v1/nose", image, args.clients, started + args.minutes * 60)
            load.start()
            samples: list[tuple[float, int]] = []
            while any(thread.is_alive() for thread in load.threads):
                samples.append((time.monotonic() - started, process_tree_rss_bytes(server.pid)))
                time.sleep(SAMPLE_SECONDS)
            load.join()
        finally:
            server.terminate()
            server.wait(timeout=60)
    baseline, final, after_warm_up = rss_baseline_and_final(samples, args.warm_up, args.minutes * 60)
    seconds = time.monotonic() - started
    errors = sum(count for outcome, count in load.outcomes.items() if outcome != "200")
    return {
        "minutes": args.minutes,
        "clients": args.clients,
        "image": args.image.name,
        "workers": args.workers,
        "model_instances": args.model_instances,
        "requests": sum(load.outcomes.values()),
        "errors": errors,
        "outcomes": dict(load.outcomes),
        "requests_per_s": sum(load.outcomes.values()) / seconds,
        "latency_p50_ms": percentile(load.latencies, 0.50) * 1000,
        "latency_p99_ms": percentile(load.latencies, 0.99) * 1000,
        "rss_after_warm_up_mb": baseline / 2**20,
        "rss_final_mb": final / 2**20,
        "rss_max_mb": max(after_warm_up) / 2**20,
        "rss_growth_percent": (final - baseline) / baseline * 100,
        "rss_samples_mb": [(round(at, 1), round(rss / 2**20, 1)) for at, rss in samples],
    }


def report(result: dict, max_growth: float) -> bool:
    passed = result["errors"] == 0 and result["rss_growth_percent"] < max_growth
    rows = [
        ("duration", f"{result['minutes']:g} min, {result['clients']} clients, {result['image']}"),
        ("server", f"{result['workers']} workers x {result['model_instances']} model instances"),
        ("requests", f"{result['requests']} ({result['requests_per_s']:.0f}/s)"),
        ("errors", f"{result['errors']} {result['outcomes']}"),
        ("latency p50 / p99", f"{result['latency_p50_ms']:.1f} / {result['latency_p99_ms']:.1f} ms"),
        ("RSS after warm-up (median, first window)", f"{result['rss_after_warm_up_mb']:.1f} MB"),
        (
            "RSS at the end (median, last window; max)",
            f"{result['rss_final_mb']:.1f} MB ({result['rss_max_mb']:.1f} MB)",
        ),
        ("RSS growth", f"{result['rss_growth_percent']:+.2f} % (target < {max_growth:g} %)"),
        ("verdict", "PASS" if passed else "FAIL"),
    ]
    print("| soak | |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return passed


def pick_image(path: Path) -> Path:
    """The file itself, or the folder's JPEG closest to 100 kB (about a 640x480 photo)."""
    if path.is_file():
        return path
    return min(sorted(path.rglob("*.jpg")), key=lambda jpeg: abs(jpeg.stat().st_size - 100_000))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--warm-up", type=float, default=60.0, help="seconds before the RSS baseline")
    parser.add_argument("--workers", type=int, default=Settings.workers)
    parser.add_argument("--model-instances", type=int, default=Settings.model_instances)
    parser.add_argument(
        "--image", type=Path, default=DEFAULT_IMAGE, help="a JPEG, or a folder to take one from"
    )
    parser.add_argument("--max-growth", type=float, default=10.0, help="RSS growth target, percent")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    args.image = pick_image(args.image)
    # SIGTERM (e.g. from timeout) unwinds like Ctrl-C, so the server is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    result = soak(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if report(result, args.max_growth) else 1


if __name__ == "__main__":
    sys.exit(main())
