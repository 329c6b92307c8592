"""The front end alone: CPU per request of gunicorn workers serving a stand-in app, no model.

    python -m bench.frontends                      # gthread against nosetrack's worker, 32 clients
    python -m bench.frontends --clients 1,32 --seconds 10 --repeat 3

The app reads a 105 kB raw JPEG body (or, with --route /image-bin, a multipart form the way Flask reads
it) and answers a small JSON, as the issue's front-end table did: what is left is the worker's own cost,
the HTTP parsing and the kernel's. Each system runs with 2 workers and the threads `nosetrack serve`
gives them; CPU is the whole process tree's, over the requests answered.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from flask import Flask, jsonify, request

from bench import stamp
from bench.loadgen import require_wrk, run_wrk, write_bodies
from bench.photos import make_photos
from bench.procstats import sample_tree
from nosetrack.launcher import ServerProcess

WORKERS = {"gthread": "gthread", "nosetrack": "nosetrack.server.worker.BufferingWorker"}
THREADS = 36  # nosetrack serve's default: 2 models + 32 waiting + 2 spare

app = Flask(__name__)


@app.post("/v1/nose")
def raw_body():
    return jsonify({"x": 0.5, "y": 0.5, "bytes": len(request.get_data())})


@app.post("/image-bin")
def form():
    return jsonify({"x": 0.5, "y": 0.5, "bytes": len(request.files["image"].read())})


def start(worker: str, folder: Path) -> ServerProcess:
    command = [sys.executable, "-m", "gunicorn", "-k", WORKERS[worker], "-w", "2", "--threads", str(THREADS)]
    command += ["--worker-connections", str(THREADS), "--keep-alive", "0", "bench.frontends:app"]

    def probe(url: str) -> bool:
        import requests

        return requests.get(url + "/", timeout=2).status_code == 404

    return ServerProcess(
        lambda port: [*command, "--bind", f"127.0.0.1:{port}"],
        folder / f"{worker}.out",
        probe,
        env={"NOSETRACK_DRAIN_DELAY": "0", "PYTHONPATH": os.pathsep.join([str(stamp.REPOSITORY), *sys.path])},
    )


def cpu_per_request(worker: str, folder: Path, args: argparse.Namespace, bodies: tuple) -> dict:
    content_type, paths = bodies
    route, clients, seconds = args.route, [int(c) for c in args.clients.split(",")], args.seconds
    server = start(worker, folder)
    try:
        run_wrk(server.url + route, 8, 2, content_type, paths)
        result = {}
        for count in clients:
            before = {s.pid: s.cpu_seconds for s in sample_tree(server.process.pid)}
            run = run_wrk(server.url + route, count, seconds, content_type, paths)
            after = sample_tree(server.process.pid)
            cpu = sum(s.cpu_seconds - before.get(s.pid, 0.0) for s in after)
            result[count] = {
                "cpu_ms": cpu * 1000 / max(1, run["requests"]),
                "p50_ms": run["latency_us"]["p50"] / 1000,
                "errors": sum(run["errors"].values()),
            }
    finally:
        server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--route", default="/v1/nose", choices=("/v1/nose", "/image-bin"))
    parser.add_argument("--clients", default="32")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", default=",".join(WORKERS))
    parser.add_argument("--out", type=Path, help="write frontends.md and frontends.json here")
    args = parser.parse_args()
    require_wrk()
    clients = [int(c) for c in args.clients.split(",")]
    machine = stamp.machine()
    runs: dict[str, list[dict]] = {worker: [] for worker in args.workers.split(",")}
    with tempfile.TemporaryDirectory(prefix="nosetrack-frontends-") as folder:
        photos = make_photos(Path(folder) / "photos")["640x480"]
        route = "/image-bin" if args.route == "/image-bin" else "/image-64"
        content_type, paths = write_bodies(route, photos, Path(folder) / "bodies")
        if args.route == "/v1/nose":
            content_type, paths = "image/jpeg", photos
        for _ in range(args.repeat):
            for worker in runs:
                runs[worker].append(cpu_per_request(worker, Path(folder), args, (content_type, paths)))
    stamp.finish(machine)
    lines = [
        f"# Front ends with a stand-in app, {args.route} (a 640x480 JPEG)",
        "",
        f"{stamp.describe(machine)}; medians of {args.repeat} runs of {args.seconds:g} s.",
        "",
        "| worker | clients | CPU ms per request | p50 ms | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for worker, results in runs.items():
        for count in clients:
            cpu = statistics.median(r[count]["cpu_ms"] for r in results)
            p50 = statistics.median(r[count]["p50_ms"] for r in results)
            errors = sum(r[count]["errors"] for r in results)
            lines.append(f"| {worker} | {count} | {cpu:.3f} | {p50:.2f} | {errors} |")
    stamp.publish(args.out, "frontends", lines, {"machine": machine, "runs": runs})


if __name__ == "__main__":
    main()
