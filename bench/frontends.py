"""Front doors side by side: CPU per request of nosetrack's own app on each candidate server, no model.

    python -m bench.frontends --out bench/results          # every candidate, 32 keep-alive clients
    python -m bench.frontends --candidates nosetrack,granian-asgi --seconds 10 --repeat 3

Every candidate serves the same application (bench/front_door_apps.py) with 2 workers. The request is a
110 kB body that is no image: a 415 once the whole body is read, checked, logged and counted, so the whole
request path but the model. CPU is the server's whole process tree over the requests answered; wrk keeps
its connections alive. What each candidate can and cannot do (streams, TLS deadlines) is docs/design.md's.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import requests

from bench import stamp
from bench.loadgen import require_wrk, run_wrk
from bench.procstats import sample_tree
from nosetrack.config import Settings
from nosetrack.launcher import ServerProcess
from nosetrack.server.capacity import capacity

THREADS = str(capacity(Settings()).requests)
PYTHON = sys.executable
# The command of each candidate, listening on the port it is given.
CANDIDATES = {
    "nosetrack serve (uvicorn, httptools, uvloop)": lambda port: [
        *(str(Path(PYTHON).with_name("nosetrack")), "serve", "--workers", "2", "--port", str(port)),
        *("--log-file", ""),
    ],
    "uvicorn + a2wsgi's WSGIMiddleware": lambda port: [
        *(PYTHON, "-m", "uvicorn", "--factory", "bench.front_door_apps:a2wsgi_app", "--workers", "2"),
        *("--loop", "uvloop", "--http", "httptools", "--port", str(port), "--no-access-log"),
    ],
    "Granian ASGI": lambda port: [
        *(PYTHON, "-m", "granian", "--interface", "asgi", "--factory", "--workers", "2"),
        *("--port", str(port), "--no-access-log", "bench.front_door_apps:front_door"),
    ],
    "Granian WSGI (no streams)": lambda port: [
        *(PYTHON, "-m", "granian", "--interface", "wsgi", "--factory", "--workers", "2"),
        *("--blocking-threads", THREADS, "--port", str(port), "bench.front_door_apps:flask_app"),
    ],
    "Hypercorn (uvloop)": lambda port: [
        *(PYTHON, "-m", "hypercorn", "-w", "2", "-k", "uvloop", "--bind", f"127.0.0.1:{port}"),
        "bench.front_door_apps:front_door()",
    ],
    "gunicorn gthread (WSGI, no streams)": lambda port: [
        *(PYTHON, "-m", "gunicorn", "-k", "gthread", "-w", "2", "--threads", THREADS),
        *("--bind", f"127.0.0.1:{port}", "bench.front_door_apps:flask_app()"),
    ],
}


def start(name: str, folder: Path) -> ServerProcess:
    def ready(url: str) -> bool:
        return requests.get(url + "/readyz", timeout=2).status_code == 200

    # Metrics shared by the workers through files, as `nosetrack serve` keeps them, for every candidate.
    metrics = tempfile.mkdtemp(prefix="metrics-", dir=folder)
    env = {
        "NOSETRACK_LOG_FILE": "",
        "PROMETHEUS_MULTIPROC_DIR": metrics,
        "PYTHONPATH": os.pathsep.join([str(stamp.REPOSITORY), *sys.path]),
    }
    safe = "".join(c if c.isalnum() else "-" for c in name)
    return ServerProcess(CANDIDATES[name], folder / f"{safe}.out", ready, env=env)


def connections_per_process(port: int) -> list[int]:
    """How many established connections each server process holds on `port`, most first (`ss`)."""
    listing = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True
    ).stdout
    counts = Counter(re.findall(r"pid=(\d+)", listing))
    return sorted(counts.values(), reverse=True)


def cpu_per_request(name: str, folder: Path, body: Path, clients: int, seconds: float) -> dict:
    server = start(name, folder)
    try:
        url = server.url + "/v1/nose"
        run_wrk(url, 8, 2, "image/jpeg", [body])  # warm up
        before = {s.pid: s.cpu_seconds for s in sample_tree(server.process.pid)}
        spread: list[int] = []
        sampler = threading.Timer(seconds / 2, lambda: spread.extend(connections_per_process(server.port)))
        sampler.start()
        run = run_wrk(url, clients, seconds, "image/jpeg", [body])
        sampler.join()
        after = sample_tree(server.process.pid)
    finally:
        server.stop()
    cpu = sum(s.cpu_seconds - before.get(s.pid, 0.0) for s in after)
    return {
        "cpu_ms": cpu * 1000 / max(1, run["requests"]),
        "requests_per_s": run["requests"] / seconds,
        "p50_ms": run["latency_us"]["p50"] / 1000,
        "p99_ms": run["latency_us"]["p99"] / 1000,
        # wrk counts every non-2xx answer as an error: only the 415s asked for are expected.
        "errors": sum(count for kind, count in run["errors"].items() if kind != "status"),
        "connections_per_worker": spread,
    }


def table_row(name: str, results: list[dict]) -> str:
    """One candidate's medians over its runs (bench/render_docs.py renders the same rows)."""
    keys = ("cpu_ms", "requests_per_s", "p50_ms", "p99_ms")
    median = {key: statistics.median(r[key] for r in results) for key in keys}
    errors = sum(r["errors"] for r in results)
    spread = " / ".join("+".join(map(str, r["connections_per_worker"])) for r in results)
    return (
        f"| {name} | {median['cpu_ms']:.3f} | {median['requests_per_s']:.0f} | {median['p50_ms']:.2f} "
        f"| {median['p99_ms']:.2f} | {errors} | {spread} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--candidates", help="comma-separated prefixes of the candidates' names")
    parser.add_argument("--out", type=Path, help="write frontends.md and frontends.json here")
    args = parser.parse_args()
    require_wrk()
    names = list(CANDIDATES)
    if args.candidates:
        prefixes = [p.strip().lower() for p in args.candidates.split(",")]
        names = [n for n in names if any(n.lower().startswith(p) for p in prefixes)]
    machine = stamp.machine()
    runs: dict[str, list[dict]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="nosetrack-frontends-") as folder:
        body = Path(folder) / "not-an-image.bin"
        body.write_bytes(os.urandom(110 * 1024))
        for _ in range(args.repeat):  # interleaved, so a noisy minute touches every candidate alike
            for name in names:
                runs[name].append(cpu_per_request(name, Path(folder), body, args.clients, args.seconds))
    stamp.finish(machine)
    lines = [
        f"# Front doors: nosetrack's app on each server, {args.clients} keep-alive clients, no model",
        "",
        f"{stamp.describe(machine)}; medians of {args.repeat} runs of {args.seconds:g} s.",
        "",
        "| server | CPU ms per request | requests/s | p50 ms | p99 ms | errors | connections per worker |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, results in runs.items():
        lines.append(table_row(name, results))
    stamp.publish(args.out, "frontends", lines, {"machine": machine, "runs": runs})


if __name__ == "__main__":
    main()
