"""What the server adds to the pipeline: CPU per answer against CPU per image in process, side by side.

    python -m bench.overhead --out bench/results                     # 640x480 /image-bin, 32 clients and 1
    python -m bench.overhead --variant "no log line=--log-level WARNING" --repeat 3

The issue's targets: CPU per answer at 32 clients at most 1.08x the in-process pipeline's, and p50 at one
client at most the in-process latency + 1 ms. nosetrack counts the CPU its pipeline (decode and model) used
(`nosetrack_pipeline_cpu_seconds_total`), which splits the server's CPU per answer into the pipeline's,
comparable with the in-process figure, and the rest: the server's own work and the kernel's.

CPU per answer (the server's CPU time over its answers, for its
whole process tree) holds up on a busy machine far better than requests/s; each repeat measures the
in-process pipeline and then every variant of the server, so drifts in load hit them alike. Writes
overhead.md and overhead.json into --out, stamped with the commit and the load.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
from pathlib import Path

from bench import inprocess, stamp
from bench.loadgen import require_wrk, write_bodies
from bench.photos import make_photos
from bench.run import measure_system
from bench.servers import SYSTEMS, System

CPU_TARGET = 1.08
LATENCY_TARGET_MS = 1.0


def variants(specs: list[str], model: str | None) -> list[System]:
    """`nosetrack serve` with its defaults, then each "label=serve flags" of `specs` (all with `model`)."""
    common = ("--model", model) if model else ()
    chosen = [System("nosetrack", SYSTEMS["nosetrack"].label, common)]
    for spec in specs:
        label, _, flags = spec.partition("=")
        chosen.append(System("nosetrack", label, (*common, *flags.split())))
    return chosen


def measure(args: argparse.Namespace, folder: Path) -> list[dict]:
    photos = make_photos(folder / "photos")[args.size]
    content_type, bodies = write_bodies(args.route, photos, folder / "bodies")
    plan = [(args.route, args.size, clients) for clients in (args.clients, 1)]
    rows = []
    for repeat in range(args.repeat):
        alone = dataclasses.asdict(inprocess.measure(photos, 1, args.seconds))
        rows.append(
            {
                "repeat": repeat,
                "system": "in process",
                "cpu_ms": alone["cpu_cores"] * 1000.0 / alone["images_per_s"],
                "pipeline_cpu_ms": alone["cpu_cores"] * 1000.0 / alone["images_per_s"],
                "p50_ms_1": alone["p50_ms"],
            }
        )
        print(
            f"in process: {rows[-1]['cpu_ms']:.2f} ms CPU per image, p50 {alone['p50_ms']:.2f} ms", flush=True
        )
        for system in variants(args.variant, args.model):
            by_clients = {
                row["clients"]: row
                for row in measure_system(
                    system,
                    plan,
                    {(args.route, args.size): (content_type, bodies, photos)},
                    args.seconds,
                    folder,
                    None,
                )
            }
            rows.append(
                {
                    "repeat": repeat,
                    "system": system.label,
                    "cpu_ms": by_clients[args.clients]["cpu_ms_per_request"],
                    "pipeline_cpu_ms": by_clients[args.clients]["pipeline_cpu_ms_per_request"],
                    "req_s": by_clients[args.clients]["req_s"],
                    "p50_ms_1": by_clients[1]["p50_ms"],
                    "errors": by_clients[args.clients]["errors"] + by_clients[1]["errors"],
                }
            )
    return rows


def table(rows: list[dict], clients: int) -> list[str]:
    """Medians over the repeats, each server against the in-process pipeline of the same repeats."""
    systems = list(dict.fromkeys(row["system"] for row in rows))
    median = {
        system: {
            key: statistics.median(row.get(key, 0.0) for row in rows if row["system"] == system)
            for key in ("cpu_ms", "pipeline_cpu_ms", "p50_ms_1", "req_s")
        }
        for system in systems
    }
    alone = median["in process"]
    lines = [
        f"| system | CPU ms per answer at {clients} clients | / in process (target <= {CPU_TARGET}) "
        "| of which the pipeline (decode and model) | the rest: the server's own work "
        f"| requests/s at {clients} clients | p50 at 1 client, ms "
        f"| - in process (target <= {LATENCY_TARGET_MS:g} ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system in systems:
        cpu, p50 = median[system]["cpu_ms"], median[system]["p50_ms_1"]
        ratio, extra = cpu / alone["cpu_ms"], p50 - alone["p50_ms_1"]
        rate = f"{median[system]['req_s']:.1f}" if system != "in process" else "-"
        pipeline = median[system]["pipeline_cpu_ms"]
        lines.append(
            f"| {system} | {cpu:.2f} | {ratio:.3f} | {pipeline:.2f} | {cpu - pipeline:.2f} | {rate} "
            f"| {p50:.2f} | {extra:+.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write overhead.md and overhead.json here")
    parser.add_argument("--route", default="/image-bin")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured run")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--model", help="another model for both sides (a tiny one shows the server's own cost most clearly)"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help='"label=serve flags", e.g. "4 models=--model-instances 4"',
    )
    args = parser.parse_args()
    require_wrk()
    if args.model:
        args.model = str(Path(args.model).resolve())
        os.environ["NOSETRACK_MODELS"] = args.model  # for the in-process side
    machine = stamp.machine()
    with tempfile.TemporaryDirectory(prefix="nosetrack-overhead-") as folder:
        rows = measure(args, Path(folder))
    stamp.finish(machine)
    text = [
        f"# Server overhead, {args.route} {args.size}",
        "",
        f"{stamp.describe(machine)}; {args.repeat} repeats of {args.seconds:g} s runs; medians.",
        "",
        *table(rows, args.clients),
        "",
    ]
    stamp.publish(args.out, "overhead", text, {"machine": machine, "rows": rows})


if __name__ == "__main__":
    main()
