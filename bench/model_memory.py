"""Memory per model: a worker's resident memory with one, two and three models, and with more instances.

    python -m bench.model_memory --out bench/results/model_memory.md      # about a minute

Each configuration starts `nosetrack serve --workers 1` with its models, sends each model a few 640x480
photographs (so every instance has run and its buffers exist), then reads the worker's VmRSS from /proc.
The difference between configurations is what a model (or an instance) adds to every worker.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import requests

from bench.photos import make_photos
from bench.procstats import tree
from bench.servers import SYSTEMS, RunningServer, System
from bench.stamp import commit

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"
REQUESTS_PER_MODEL = 8
# (label, serve arguments, the model names clients ask for)
CONFIGURATIONS = [
    ("facemesh, 1 instance", ["--model-instances", "1", "--model", "facemesh"], ["nosetrack-facemesh"]),
    ("facemesh, 2 instances", ["--model", "facemesh"], ["nosetrack-facemesh"]),
    (
        "facemesh + facemesh-short-range, 2 instances each",
        ["--model", "facemesh", "--model", "facemesh-short-range"],
        ["nosetrack-facemesh", "nosetrack-facemesh-short-range"],
    ),
    (
        "facemesh + facemesh-short-range + facemesh-steady, 2 instances each",
        ["--model", "facemesh", "--model", "facemesh-short-range", "--model", "facemesh-steady"],
        ["nosetrack-facemesh", "nosetrack-facemesh-short-range", "nosetrack-facemesh-steady"],
    ),
    (
        "facemesh + the two tiny test specs (a folder), 2 instances each",
        ["--model", "facemesh", "--model", str(FIXTURES)],
        ["nosetrack-facemesh", "keypoints-fixture", "nose_nhwc"],
    ),
]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        status = dict(line.split(":", 1) for line in handle if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024.0


def measure(arguments: list[str], names: list[str], jpeg: bytes, folder: Path) -> float:
    system = System("nosetrack", SYSTEMS["nosetrack"].label, ("--workers", "1", *arguments))
    server = RunningServer(system, folder, None, jpeg)
    try:
        for name in names:
            for _ in range(REQUESTS_PER_MODEL):
                answer = requests.post(
                    f"{server.url}/v1/nose",
                    params={"model": name},
                    data=jpeg,
                    headers={"Content-Type": "image/jpeg"},
                    timeout=60,
                )
                answer.raise_for_status()
        time.sleep(1.0)  # let the allocator settle after the last answer
        (worker,) = [pid for pid in tree(server.process.pid) if pid != server.process.pid]
        return rss_mb(worker)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="the Markdown table to write (JSON beside it)"
    )
    args = parser.parse_args()
    load_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="nosetrack-memory-") as folder:
        jpeg = make_photos(Path(folder) / "photos")["640x480"][0].read_bytes()
        for label, arguments, names in CONFIGURATIONS:
            rows.append(
                {"configuration": label, "worker RSS MB": measure(arguments, names, jpeg, Path(folder))}
            )
            print(rows[-1], flush=True)
    stamp = {
        "commit": commit(),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": f"{load_start[0]:.2f} .. {os.getloadavg()[0]:.2f}",
    }
    lines = [
        "# Memory per model, one worker",
        "",
        f"`python -m bench.model_memory` on commit `{stamp['commit']}`, {stamp['started']}; load average "
        f"{stamp['load']}. Resident memory (VmRSS) of the one worker after {REQUESTS_PER_MODEL} 640x480 "
        "photographs per model; every worker of `nosetrack serve` holds the same.",
        "",
        "| configuration | worker RSS MB |",
        "|---|---:|",
        *(f"| {row['configuration']} | {row['worker RSS MB']:.0f} |" for row in rows),
    ]
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"stamp": stamp, "rows": rows}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
