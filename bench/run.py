"""The benchmark in one command: the in-process limit, the seed's design, LitServe and nosetrack side by side.

    python -m bench.run --out bench/results          # the full run, about 9 minutes on 2 cores
    python -m bench.run --out /tmp/quick --quick      # a 2-minute smoke run of the same harness

Writes results.json (every number), results.md (the tables and target ratios) and results.png (the plot).
Needs wrk (apt-get install -y wrk) and the bench extra (pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import time
from pathlib import Path

import requests

from bench import inprocess, report, stamp
from bench.loadgen import ROUTES, require_wrk, run_wrk, write_bodies
from bench.photos import make_photos
from bench.procstats import sample_tree
from bench.servers import SYSTEMS, RunningServer, System

WARM_UP_SECONDS = 2.0
# wrk stops with up to `clients` requests still in the server; they finish during this pause, so one run's
# leftovers neither add to the next run's latency nor push it over a worker's admission limit.
SETTLE_SECONDS = 1.0
PINNED_ROUTE, PINNED_SIZE, PINNED_CLIENTS = "/image-bin", "640x480", 32


def measure_inprocess(photos: dict[str, list[Path]], seconds: float, cores: int) -> list[dict]:
    rows = []
    for size in photos:
        for processes in sorted({1, cores}):
            result = inprocess.measure(photos[size], processes, seconds)
            row = {"system": "inprocess", "route": "-", "size": size, "clients": processes}
            row["cpus"] = "all"
            row.update(dataclasses.asdict(result))
            row["req_s"] = row.pop("images_per_s")
            row["cpu_ms_per_request"] = row["cpu_cores"] * 1000.0 / row["req_s"]
            rows.append(row)
            print(
                f"  in-process {size} x{processes}: {row['req_s']:.1f} img/s p50 {row['p50_ms']:.2f} ms",
                flush=True,
            )
    return rows


def pipeline_cpu_seconds(url: str) -> float:
    """nosetrack's own count of the CPU its pipeline used, summed over the workers."""
    text = requests.get(url + "/metrics", timeout=10).text
    return float(re.search(r"^nosetrack_pipeline_cpu_seconds_total (\S+)$", text, re.MULTILINE).group(1))


def measure_system(
    system: System,
    plan: list[tuple[str, str, int]],
    bodies: dict,
    seconds: float,
    raw: Path,
    cpus: str | None,
) -> list[dict]:
    """Start `system`, run every (route, size, clients) of `plan` against it, stop it."""
    probe = next(iter(bodies.values()))[2][0].read_bytes()
    server = RunningServer(system, raw, cpus, probe)
    rows = []
    try:
        warmed = set()
        for route, size, clients in plan:
            content_type, paths, _ = bodies[route, size]
            url = server.url + route
            if (route, size) not in warmed:
                run_wrk(url, 8, WARM_UP_SECONDS, content_type, paths)
                warmed.add((route, size))
            time.sleep(SETTLE_SECONDS)
            pipeline_before = pipeline_cpu_seconds(server.url) if system.name == "nosetrack" else None
            before = {s.pid: s.cpu_seconds for s in sample_tree(server.process.pid)}
            result = run_wrk(url, clients, seconds, content_type, paths)
            after = sample_tree(server.process.pid)
            pipeline = None if pipeline_before is None else pipeline_cpu_seconds(server.url) - pipeline_before
            wall = result["duration_us"] / 1e6
            server_cpu = sum(s.cpu_seconds - before.get(s.pid, 0.0) for s in after)
            errors = sum(result["errors"].values())
            rows.append(
                {
                    "system": system.name,
                    "label": system.label,
                    "route": route,
                    "size": size,
                    "clients": clients,
                    "cpus": cpus or "all",
                    "req_s": result["requests"] / wall,
                    "p50_ms": result["latency_us"]["p50"] / 1000.0,
                    "p90_ms": result["latency_us"]["p90"] / 1000.0,
                    "p99_ms": result["latency_us"]["p99"] / 1000.0,
                    "errors": errors,
                    "error_kinds": result["errors"],
                    "cpu_cores": server_cpu / wall,
                    "cpu_ms_per_request": server_cpu * 1000.0 / max(1, result["requests"]),
                    # The part of it spent decoding and in the model, on the requests' threads.
                    "pipeline_cpu_ms_per_request": (
                        pipeline * 1000.0 / max(1, result["requests"]) if pipeline is not None else None
                    ),
                    "loadgen_cpu_cores": result["loadgen_cpu_s"] / wall,
                }
            )
            print(
                f"  {system.name:9} cpus={cpus or 'all'} {route:10} {size:8} c={clients:<2} "
                f"{rows[-1]['req_s']:7.1f} req/s p50 {rows[-1]['p50_ms']:6.1f} ms "
                f"p99 {rows[-1]['p99_ms']:6.1f} ms err {errors} cpu {rows[-1]['cpu_cores']:.2f} "
                f"= {rows[-1]['cpu_ms_per_request']:.1f} ms/req",
                flush=True,
            )
        processes = sample_tree(server.process.pid)
    finally:
        server.stop()
    peak = max(s.peak_rss_mb for s in processes)
    for row in rows:
        row["peak_rss_mb"] = peak
        row["processes"] = len(processes)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured run")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated")
    parser.add_argument("--systems", default="seed,litserve,nosetrack", help="HTTP systems to run")
    parser.add_argument(
        "--serve-args", default="", help="extra flags for `nosetrack serve`, e.g. '--threads 2'"
    )
    parser.add_argument("--no-pinned", action="store_true", help="skip the taskset 1-core runs")
    parser.add_argument("--sizes", default="640x480,1280x720", help="image sizes, comma-separated")
    parser.add_argument("--routes", default=",".join(ROUTES), help="routes, comma-separated")
    parser.add_argument("--no-inprocess", action="store_true", help="skip the in-process limit")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 640x480 only: a smoke test")
    parser.add_argument(
        "--note", default="", help="conditions to print with the results (e.g. 'quiet machine')"
    )
    args = parser.parse_args()
    require_wrk()
    seconds = 3.0 if args.quick else args.seconds
    clients = [int(c) for c in args.clients.split(",")]
    args.out = args.out.resolve()  # servers run in raw/ and are handed paths inside it
    raw = args.out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    photos = make_photos(raw / "photos")
    sizes = ["640x480"] if args.quick else args.sizes.split(",")
    photos = {size: photos[size] for size in sizes}
    routes = args.routes.split(",")
    bodies = {}
    for route in routes:
        for size, paths in photos.items():
            content_type, body_paths = write_bodies(route, paths, raw / "bodies")
            bodies[route, size] = (content_type, body_paths, paths)
    systems = [SYSTEMS[name] for name in args.systems.split(",") if name]
    nosetrack = SYSTEMS["nosetrack"]
    if args.serve_args:
        nosetrack = System("nosetrack", f"nosetrack serve {args.serve_args}", tuple(args.serve_args.split()))
        systems = [nosetrack if s.name == "nosetrack" else s for s in systems]
    cores = os.cpu_count() or 1

    info = {"machine": stamp.machine(), "note": args.note, "seconds_per_run": seconds, "rows": []}
    started = time.monotonic()
    print("in-process limit", flush=True)
    if not args.no_inprocess:
        info["rows"] += measure_inprocess(photos, seconds, cores)
    plan = [(route, size, c) for route in routes for size in photos for c in clients]
    for system in systems:
        print(system.label, flush=True)
        info["rows"] += measure_system(system, plan, bodies, seconds, raw, None)
    if not args.no_pinned:
        pinned_size = PINNED_SIZE if PINNED_SIZE in photos else next(iter(photos))
        for system in (s for s in systems if s.name in ("seed", "nosetrack")):
            print(f"{system.label}, taskset -c 0", flush=True)
            info["rows"] += measure_system(
                system, [(PINNED_ROUTE, pinned_size, PINNED_CLIENTS)], bodies, seconds, raw, "0"
            )
    stamp.finish(info["machine"])
    info["minutes"] = (time.monotonic() - started) / 60.0
    (args.out / "results.json").write_text(json.dumps(info, indent=1))
    report.write(info, args.out)
    print(f"done in {info['minutes']:.1f} min: {args.out / 'results.md'}, {args.out / 'results.png'}")


if __name__ == "__main__":
    main()
