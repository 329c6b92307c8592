"""Which way of sending a batch of 16 640x480 JPEGs costs least: /v1/nose one by one, /v2 over HTTP (binary or
JSON), or gRPC, against one `nosetrack serve --grpc-port` with its defaults.

    python -m bench.oip_paths --out bench/results/oip_paths.md            # 20 rounds, about a minute
    python -m bench.oip_paths --out /tmp/oip.md --rounds 3                # a smoke run

Each round sends the same 16 photographs once per path, the paths taking turns, so a change in the machine's
load falls on all of them alike. Per path: the batch's wall time (median over rounds), the server's CPU per
image (its whole process tree, from /proc) and the client's (this process, which shares the machine). Needs
the test extra (tritonclient with http and grpc): pip install -e '.[test]'.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from bench.photos import make_photos
from bench.procstats import sample_tree
from bench.servers import SYSTEMS, RunningServer, System
from nosetrack.launcher import free_port

BATCH = 16
MODEL = "nosetrack-facemesh"
CONCURRENT = 4  # requests in flight on the one-by-one paths that run concurrently


@dataclass
class PathResult:
    path: str
    requests_per_batch: int
    wall_ms: list[float]
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    images: int = 0

    def row(self) -> dict:
        return {
            "path": self.path,
            "requests per batch": self.requests_per_batch,
            "batch wall ms, median": statistics.median(self.wall_ms),
            "images/s": self.images / (sum(self.wall_ms) / 1000.0),
            "server CPU ms/image": 1000.0 * self.server_cpu_s / self.images,
            "client CPU ms/image": 1000.0 * self.client_cpu_s / self.images,
        }


def bytes_tensor(module, jpegs: list[bytes], binary: bool):
    tensor = module.InferInput("IMAGE", [len(jpegs)], "BYTES")
    if binary:
        tensor.set_data_from_numpy(np.array(jpegs, dtype=np.object_))
    else:  # JSON strings cannot hold raw bytes: the protocol's JSON form is base64
        encoded = np.array([base64.b64encode(jpeg) for jpeg in jpegs], dtype=np.object_)
        tensor.set_data_from_numpy(encoded, binary_data=False)
    return tensor


def make_paths(url: str, grpc_port: int, jpegs: list[bytes]) -> dict[str, tuple[int, Callable[[], None]]]:
    """Each path: how many requests it makes of the batch, and a function that sends the batch once."""
    session = requests.Session()
    http_client = triton_http.InferenceServerClient(url.removeprefix("http://"), concurrency=1)
    grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    pool = ThreadPoolExecutor(CONCURRENT)

    def nose(jpeg: bytes) -> None:
        answer = session.post(url + "/v1/nose", data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=60)
        answer.raise_for_status()

    def fresh_nose(jpeg: bytes) -> None:  # a connection each: threads cannot share one Session safely
        answer = requests.post(
            url + "/v1/nose", data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=60
        )
        answer.raise_for_status()

    def v2(binary: bool) -> None:
        outputs = [
            triton_http.InferRequestedOutput(name, binary_data=binary) for name in ("NOSE", "DETECTED")
        ]
        result = http_client.infer(MODEL, [bytes_tensor(triton_http, jpegs, binary)], outputs=outputs)
        assert result.as_numpy("DETECTED").shape == (BATCH,)

    def grpc_batch() -> None:
        result = grpc_client.infer(MODEL, [bytes_tensor(triton_grpc, jpegs, True)])
        assert result.as_numpy("DETECTED").shape == (BATCH,)

    def grpc_one(jpeg: bytes) -> None:
        grpc_client.infer(MODEL, [bytes_tensor(triton_grpc, [jpeg], True)])

    # A connection each, as separate client processes would have (channels in one process share one unless
    # told not to): the kernel hands each new connection to one of the workers.
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    grpc_clients = [
        triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}", channel_args=own_connection)
        for _ in range(CONCURRENT)
    ]

    def grpc_quarter(index: int) -> None:
        for jpeg in jpegs[index::CONCURRENT]:
            grpc_clients[index].infer(MODEL, [bytes_tensor(triton_grpc, [jpeg], True)])

    return {
        "/v1/nose, one by one": (BATCH, lambda: [nose(jpeg) for jpeg in jpegs]),
        f"/v1/nose, {CONCURRENT} at a time": (BATCH, lambda: list(pool.map(fresh_nose, jpegs))),
        "/v2 HTTP, one request, binary tensors": (1, lambda: v2(binary=True)),
        "/v2 HTTP, one request, JSON (base64)": (1, lambda: v2(binary=False)),
        "gRPC, one request": (1, grpc_batch),
        f"gRPC, one image per request, {CONCURRENT} at a time": (
            BATCH,
            lambda: list(pool.map(grpc_one, jpegs)),
        ),
        f"gRPC, one image per request, {CONCURRENT} clients": (
            BATCH,
            lambda: list(pool.map(grpc_quarter, range(CONCURRENT))),
        ),
    }


def server_cpu(server: RunningServer) -> float:
    return sum(sample.cpu_seconds for sample in sample_tree(server.process.pid))


def measure(server: RunningServer, paths: dict, rounds: int) -> list[PathResult]:
    results = {name: PathResult(name, count, []) for name, (count, _) in paths.items()}
    for _, send in paths.values():  # warm-up: connections, and each worker's first requests
        send()
    for _ in range(rounds):
        for name, (_, send) in paths.items():
            server_before, client_before, started = (
                server_cpu(server),
                time.process_time(),
                time.perf_counter(),
            )
            send()
            wall, client = time.perf_counter() - started, time.process_time() - client_before
            result = results[name]
            result.wall_ms.append(wall * 1000.0)
            result.server_cpu_s += server_cpu(server) - server_before
            result.client_cpu_s += client
            result.images += BATCH
    return list(results.values())


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown(rows: list[dict], stamp: dict) -> str:
    columns = list(rows[0])
    lines = [
        f"# A batch of {BATCH} 640x480 JPEGs: /v1/nose, /v2 over HTTP, gRPC",
        "",
        f"`python -m bench.oip_paths --rounds {stamp['rounds']}` on commit `{stamp['commit']}`, "
        f"{stamp['started']}, {stamp['cores']} cores; load average {stamp['load_start']} at the start and "
        f"{stamp['load_end']} at the end. Server: `nosetrack serve --grpc-port P` with its defaults "
        f"({stamp['server']}).",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if column == "path" else "---:" for column in columns) + "|",
    ]
    for row in rows:
        cells = [f"{value:.1f}" if isinstance(value, float) else str(value) for value in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="the Markdown table to write (JSON beside it)"
    )
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="nosetrack-oip-bench-") as folder:
        photos = make_photos(Path(folder) / "photos")["640x480"]
        jpegs = [photos[index % len(photos)].read_bytes() for index in range(BATCH)]
        grpc_port = free_port()
        system = System("nosetrack", SYSTEMS["nosetrack"].label, ("--grpc-port", str(grpc_port)))
        server = RunningServer(system, Path(folder), None, jpegs[0])
        try:
            results = measure(server, make_paths(server.url, grpc_port, jpegs), args.rounds)
        finally:
            server.stop()
    rows = [result.row() for result in results]
    stamp = {
        "commit": commit(),
        "started": started,
        "cores": os.cpu_count(),
        "rounds": args.rounds,
        "load_start": " ".join(f"{value:.2f}" for value in load_start),
        "load_end": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "server": "2 workers x 2 model instances",
    }
    args.out.write_text(markdown(rows, stamp))
    args.out.with_suffix(".json").write_text(
        json.dumps({"stamp": stamp, "results": [asdict(r) for r in results]}, indent=2)
    )
    print(markdown(rows, stamp))


if __name__ == "__main__":
    main()
