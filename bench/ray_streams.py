"""Tracking streams on Ray: the same 8 streams through `nosetrack serve --ray` (Ray's proxy) and through
`nosetrack serve`, one system after the other.

    python -m bench.ray_streams --out bench/results/ray          # about 3 minutes on 2 cores
    python -m bench.ray_streams --out /tmp/ray --seconds 5       # a short run

Each stream is bench.streams' camera: a moving 640x480 face at 30 fps, a {"timestamp"} message before each
frame, never waiting for answers. Per system: frames answered per second, answers with a tracked face,
frames dropped (a newer one came before the older was served), errors, latency, and the CPU of the whole
process tree (gunicorn's workers; or the local Ray cluster that `nosetrack serve --ray` starts: GCS,
raylet, controller, proxy, replicas). A short warm-up step runs first and is not counted. Every process a
system started is gone before the next system starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import tempfile
import time
from pathlib import Path

from bench.photos import make_photos
from bench.procstats import sample_tree, tree
from bench.stamp import describe, finish, machine, publish
from bench.streams import moving_sequence, run_step, summarize
from nosetrack.launcher import NosetrackProcess

WARM_UP_SECONDS = 3.0
SYSTEMS = {
    "serve": ("nosetrack serve (defaults: 2 workers x 2 models)", ()),
    "ray": (
        "nosetrack serve --ray: Ray's proxy, 2 replicas x 1 model, 1 CPU each",
        ("--ray", "--host", "127.0.0.1", "--min-replicas", "2", "--max-replicas", "2"),
    ),
}


def stop_entirely(server: NosetrackProcess) -> float:
    """SIGTERM, then whatever of its process tree is still alive a few seconds later gets SIGKILL (a local
    Ray cluster leaves agents behind for a minute). Seconds until nothing of it was left."""
    pids = tree(server.process.pid)
    started = time.monotonic()
    server.stop()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.5)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    return time.monotonic() - started


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def measure(name: str, streams: int, seconds: float, sequences, folder: Path) -> dict:
    label, flags = SYSTEMS[name]
    # RAY_ADDRESS=local: `nosetrack serve --ray` starts a local cluster of its own rather than join one that
    # runs on this machine (Ray finds any by its processes), so it counts only its own processes and
    # deletes no one else's application when it stops.
    server = NosetrackProcess(
        folder / name,
        *("--log-level", "WARNING", "--max-streams", str(streams), *flags),
        env={"RAY_ADDRESS": "local"},
    )
    url = server.url.replace("http://", "ws://") + "/v1/track"
    try:
        asyncio.run(run_step(url, sequences, streams, WARM_UP_SECONDS))
        cpu_before = sum(s.cpu_seconds for s in sample_tree(server.process.pid))
        tallies = asyncio.run(run_step(url, sequences, streams, seconds))
        server_cpu = sum(s.cpu_seconds for s in sample_tree(server.process.pid)) - cpu_before
    finally:
        stop_seconds = stop_entirely(server)
    row = summarize(streams, seconds, tallies, server_cpu, 0.0)
    answered = row["answered"]
    row.update(
        system=name,
        label=label,
        tracked_share=sum(t.tracked for t in tallies) / answered if answered else 0.0,
        cpu_ms_per_frame=server_cpu * 1000.0 / answered if answered else None,
        stop_seconds=stop_seconds,
    )
    print(json.dumps({k: v for k, v in row.items() if k != "passed"}), flush=True)
    return row


def report(rows: list[dict], stamp: dict, seconds: float) -> list[str]:
    base = next(row for row in rows if row["system"] == "serve")["frames_per_s"]
    lines = [
        f"# Streams on Ray: {rows[0]['streams']} streams of 30 fps, {seconds:g} s",
        "",
        f"`python -m bench.ray_streams --out bench/results/ray`: {describe(stamp)}.",
        "",
        "| system | frames/s | / nosetrack serve | tracked | dropped | errors | p50 ms | p99 ms "
        "| server CPU cores | CPU ms per frame | stop s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['frames_per_s']:.1f} | {row['frames_per_s'] / base:.2f}x "
            f"| {row['tracked_share']:.0%} | {row['dropped']} | {row['errors'] + row['unanswered']} "
            f"| {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['server_cpu_cores']:.2f} "
            f"| {row['cpu_ms_per_frame']:.1f} | {row['stop_seconds']:.1f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--systems", default="serve,ray", help="comma-separated: serve, ray")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    random.seed(0)
    stamp = machine()
    with tempfile.TemporaryDirectory(prefix="nosetrack-ray-streams-") as folder:
        photos = make_photos(Path(folder) / "photos")["640x480"]
        sequences = [moving_sequence(photo) for photo in photos]
        rows = []
        for name in args.systems.split(","):
            (Path(folder) / name).mkdir()
            rows.append(measure(name, args.streams, args.seconds, sequences, Path(folder)))
    finish(stamp)
    publish(args.out, "streams", report(rows, stamp, args.seconds), {"stamp": stamp, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
