"""Soak test: `nosetrack serve` under steady load for minutes; errors and memory growth after warm-up, and
with `--slow-clients`, a slow-body attack from the warm-up on.

    python -m bench.soak --minutes 10 --clients 32                      # 0 errors, RSS growth < 10 %
    python -m bench.soak --minutes 3 --clients 32 --slow-clients 256     # the same, under the attack
    python -m bench.soak --minutes 2 --warm-up 30 --json soak.json

It starts the server itself (so it can read the memory of the arbiter and its workers from /proc), sends
the same photograph from `--clients` threads with keep-alive connections to /v1/nose, samples the server's
total RSS every few seconds, and prints a Markdown table. Probes time /healthz and one more prediction every
second. With `--slow-clients N`, N connections send full headers and then one body byte every 4 s from the
end of the warm-up (each reconnects once answered); the targets then add: /healthz within 100 ms, a
prediction within its usual latency (the probes' p99 during the warm-up) plus 1 s, and every slow client
answered 408. The exit status is 1 when a target is missed. The client threads share the machine with the
server: on a small machine they take part of its CPU.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from math import inf
from pathlib import Path

import requests

from bench import stamp
from bench.slowloris import Probes, SlowClients
from nosetrack.config import Settings
from nosetrack.evaluation import ANNOTATED_SET
from nosetrack.launcher import NosetrackProcess

SAMPLE_SECONDS = 5.0
DEFAULT_IMAGE = ANNOTATED_SET / "images"
HEALTHZ_TARGET_MS = 100.0
PREDICTION_SLACK_MS = 1000.0


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


def start_server(args: argparse.Namespace, folder: Path) -> NosetrackProcess:
    return NosetrackProcess(
        folder,
        *("--workers", str(args.workers), "--model-instances", str(args.model_instances)),
        *("--log-level", "WARNING", "--drain-delay", "0"),
    )


def soak(args: argparse.Namespace) -> dict:
    image = args.image.read_bytes()
    machine = stamp.machine()
    with tempfile.TemporaryDirectory(prefix="nosetrack-soak-") as log_dir:
        server = start_server(args, Path(log_dir))
        attack = SlowClients(server.port, args.slow_clients) if args.slow_clients else None
        probes = Probes(server.url, image)
        try:
            started = time.monotonic()
            attack_at = started + args.warm_up
            load = Load(server.url + "/v1/nose", image, args.clients, started + args.minutes * 60)
            load.start()
            probes.start()
            samples: list[tuple[float, int]] = []
            while any(thread.is_alive() for thread in load.threads) or time.monotonic() < load.stop_at:
                if attack and not attack.started and time.monotonic() >= attack_at:
                    attack.start()
                samples.append((time.monotonic() - started, process_tree_rss_bytes(server.process.pid)))
                time.sleep(SAMPLE_SECONDS)
            load.join()
        finally:
            probes.stop()
            if attack:
                attack.stop()
            server.stop()
    baseline, final, after_warm_up = rss_baseline_and_final(samples, args.warm_up, args.minutes * 60)
    seconds = time.monotonic() - started
    errors = sum(count for outcome, count in load.outcomes.items() if outcome != "200")
    requests_done = sum(load.outcomes.values())
    result = {
        "machine": stamp.finish(machine),
        "minutes": args.minutes,
        "clients": args.clients,
        "image": args.image.name,
        "workers": args.workers,
        "model_instances": args.model_instances,
        "requests": requests_done,
        "errors": errors,
        "outcomes": dict(load.outcomes),
        "requests_per_s": requests_done / seconds,
        "latency_p50_ms": percentile(load.latencies, 0.50) * 1000,
        "latency_p99_ms": percentile(load.latencies, 0.99) * 1000,
        "rss_after_warm_up_mb": baseline / 2**20,
        "rss_final_mb": final / 2**20,
        "rss_max_mb": max(after_warm_up) / 2**20,
        "rss_growth_percent": (final - baseline) / baseline * 100,
        "rss_samples_mb": [(round(at, 1), round(rss / 2**20, 1)) for at, rss in samples],
        "slow_clients": args.slow_clients,
    }
    # The probes of the warm-up's second half are the usual; those after it, under the attack if any.
    settled, ended = started + args.warm_up / 2, started + args.minutes * 60
    for kind in ("healthz", "predict"):
        result[f"{kind}_usual"] = probes.summary(kind, settled, attack_at)
        result[f"{kind}_after_warm_up"] = probes.summary(kind, attack_at, ended)
    if attack:
        result["slow_client_answers"] = dict(attack.answers)
        result["slow_client_seconds_to_answer"] = {
            "min": min(attack.seconds_to_answer, default=float("nan")),
            "max": max(attack.seconds_to_answer, default=float("nan")),
        }
    return result


def attack_verdicts(result: dict) -> list[tuple[str, bool]]:
    """The slow-client targets, each with whether it was met."""
    healthz, predict = result["healthz_after_warm_up"], result["predict_after_warm_up"]
    usual = result["predict_usual"].get("p99_ms", float("nan"))
    answers = result.get("slow_client_answers", {})
    all_408 = bool(answers) and set(answers) == {"HTTP/1.1 408 REQUEST TIMEOUT"}
    return [
        (f"/healthz p99 <= {HEALTHZ_TARGET_MS:g} ms", healthz.get("p99_ms", inf) <= HEALTHZ_TARGET_MS),
        (
            f"prediction p99 <= usual p99 ({usual:.0f} ms) + {PREDICTION_SLACK_MS:g} ms",
            predict.get("p99_ms", inf) <= usual + PREDICTION_SLACK_MS,
        ),
        ("every slow client answered 408", all_408),
    ]


def probe_text(summary: dict) -> str:
    if not summary.get("count"):
        return "no probes"
    p50, p99, most = summary["p50_ms"], summary["p99_ms"], summary["max_ms"]
    return f"{p50:.1f} / {p99:.1f} / {most:.1f} ms ({summary['count']} probes)"


def report(result: dict, max_growth: float) -> bool:
    verdicts = [
        ("0 errors", result["errors"] == 0),
        (f"RSS growth < {max_growth:g} %", result["rss_growth_percent"] < max_growth),
    ]
    if result["slow_clients"]:
        verdicts += attack_verdicts(result)
    passed = all(met for _, met in verdicts)
    rows = [
        ("measured", stamp.describe(result["machine"])),
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
        ("probe /healthz p50 / p99 / max, warm-up", probe_text(result["healthz_usual"])),
        ("probe /healthz p50 / p99 / max, after it", probe_text(result["healthz_after_warm_up"])),
        ("probe prediction p50 / p99 / max, warm-up", probe_text(result["predict_usual"])),
        ("probe prediction p50 / p99 / max, after it", probe_text(result["predict_after_warm_up"])),
    ]
    if result["slow_clients"]:
        seconds = result["slow_client_seconds_to_answer"]
        rows += [
            ("slow clients (1 body byte / 4 s, from the warm-up's end)", str(result["slow_clients"])),
            ("their answers", str(result["slow_client_answers"])),
            ("seconds from connecting to the answer", f"{seconds['min']:.1f} to {seconds['max']:.1f}"),
        ]
    rows += [(f"target: {name}", "met" if met else "MISSED") for name, met in verdicts]
    rows.append(("verdict", "PASS" if passed else "FAIL"))
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
    parser.add_argument(
        "--slow-clients", type=int, default=0, help="slow-body connections from the warm-up's end (e.g. 256)"
    )
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
