"""Ray Serve's overhead, stated: `nosetrack serve --ray` against `nosetrack serve` on this one machine.

    python -m bench.ray_serve --out bench/results/ray          # about 5 minutes on 2 cores
    python -m bench.ray_serve --out /tmp/ray --quick           # a 1-minute smoke run

Same model, same 640x480 `/image-bin` bodies, wrk at 1 and 32 clients: requests/s, p50/p99, non-2xx answers
and CPU per answer (the whole process tree: gunicorn's workers, or Ray's GCS, raylet, controller, proxy and
replicas). Ray runs as `nosetrack serve --ray` starts it (a local cluster), with 1 and 2 single-CPU replicas
(the scaling ratio). Also measured: what a Serve handle call costs to ship the encoded image against its
decoded pixels, the choice behind decoding in the replica. Needs wrk and the `ray` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

from bench.loadgen import require_wrk, write_bodies
from bench.photos import make_photos
from bench.procstats import sample_tree
from bench.run import measure_system
from bench.servers import System
from bench.stamp import machine

ROUTE, SIZE = "/image-bin", "640x480"
# Ray's experimental HAProxy front end (Ray 2.60): requests go straight to the replicas' own HTTP servers, not
# through the Python proxy and a handle call. Its stats and metrics ports (8404, 9101) listen on all
# interfaces.
HAPROXY = {"RAY_SERVE_ENABLE_HA_PROXY": "1"}


def on_ray(replicas: int, models: int, note: str = "") -> System:
    flags = ("--ray", "--min-replicas", str(replicas), "--max-replicas", str(replicas))
    label = f"Ray, {replicas} replica(s) x {models} model(s), 1 CPU each{note}"
    return System("nosetrack", label, (*flags, "--model-instances", str(models)))


# (system, environment it runs in)
SYSTEMS: list[tuple[System, dict[str, str]]] = [
    (System("nosetrack", "nosetrack serve (defaults: 2 workers x 2 models)"), {}),
    (on_ray(1, 1), {}),
    (on_ray(2, 1), {}),
    (on_ray(1, 2), {}),
    (on_ray(2, 1, ", HAProxy"), HAPROXY),
]
SHIPPING_CALLS = 200


def handle_shipping_cost(jpeg: bytes, calls: int) -> dict:
    """Milliseconds and CPU per Serve handle round trip that carries the encoded image or its pixels to a
    replica that only measures it: the shipping alone, without HTTP or the model."""
    import ray
    from ray import serve

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Receiver:
        def size(self, payload) -> int:
            return len(payload) if isinstance(payload, bytes) else payload.nbytes

    pixels = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    ray.init(include_dashboard=False)
    try:
        handle = serve.run(Receiver.bind(), name="shipping", route_prefix=None)
        figures = {}
        for name, payload in (("encoded", jpeg), ("pixels", pixels)):
            handle.size.remote(payload).result()
            cpu_before = sum(s.cpu_seconds for s in sample_tree(os.getpid()))
            started = time.perf_counter()
            for _ in range(calls):
                handle.size.remote(payload).result()
            seconds = time.perf_counter() - started
            cpu = sum(s.cpu_seconds for s in sample_tree(os.getpid())) - cpu_before
            size = len(payload) if isinstance(payload, bytes) else payload.nbytes
            figures[name] = {
                "bytes": size,
                "ms_per_call": seconds * 1000 / calls,
                "cpu_ms_per_call": cpu * 1000 / calls,
            }
            print(f"  handle call with {name} ({size} bytes): {figures[name]}", flush=True)
        return figures
    finally:
        serve.shutdown()
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,32")
    parser.add_argument("--quick", action="store_true", help="3 s runs, two systems")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    require_wrk()
    out = args.out.resolve()
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    photos = make_photos(raw / "photos")[SIZE]
    content_type, body_paths = write_bodies(ROUTE, photos, raw / "bodies")
    bodies = {(ROUTE, SIZE): (content_type, body_paths, photos)}
    seconds = 3.0 if args.quick else args.seconds
    plan = [(ROUTE, SIZE, int(clients)) for clients in args.clients.split(",")]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    info = {"machine": machine(), "commit": commit, "note": args.note, "seconds_per_run": seconds, "rows": []}
    for system, environment in SYSTEMS[:2] if args.quick else SYSTEMS:
        print(system.label, flush=True)
        os.environ.update(environment)
        try:
            info["rows"] += measure_system(system, plan, bodies, seconds, raw, None)
        finally:
            for name in environment:
                del os.environ[name]
    print("Serve handle call: encoded image against pixels", flush=True)
    info["shipping"] = handle_shipping_cost(photos[0].read_bytes(), SHIPPING_CALLS)
    info["machine"]["load_average_at_end"] = os.getloadavg()
    (out / "results.json").write_text(json.dumps(info, indent=1))
    (out / "results.md").write_text(report(info))
    print(report(info))


def report(info: dict) -> str:
    start, end = info["machine"]["load_average_at_start"], info["machine"]["load_average_at_end"]
    lines = [
        f"Ray Serve against nosetrack serve, {info['machine']['started']}, commit {info['commit']}, "
        f"load average {start[0]:.2f} at start, {end[0]:.2f} at end. {info['note']}",
        "",
        "| system | clients | req/s | p50 ms | p99 ms | non-2xx | CPU ms / answer |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in info["rows"]:
        answers = row["req_s"] * info["seconds_per_run"]
        lines.append(
            f"| {row['label']} | {row['clients']} | {row['req_s']:.1f} | {row['p50_ms']:.1f} "
            f"| {row['p99_ms']:.1f} | {row['error_kinds']['status']} of {answers:.0f} "
            f"| {row['cpu_ms_per_request']:.1f} |"
        )
    shipping = info["shipping"]
    lines += [
        "",
        "| Serve handle call carrying | bytes | ms per call | CPU ms per call |",
        "|---|---:|---:|---:|",
    ]
    for name, figures in shipping.items():
        ms, cpu_ms = figures["ms_per_call"], figures["cpu_ms_per_call"]
        lines.append(f"| {name} | {figures['bytes']} | {ms:.2f} | {cpu_ms:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
