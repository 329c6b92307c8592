"""Capacity: how many concurrent 30 fps 640x480 streams `nosetrack serve` sustains over WS /v1/track.

    python -m bench.streams                                   # 2..16 streams, 10 s each (~2.5 minutes)
    python -m bench.streams --streams 4 8 12 --seconds 5      # a short run
    python -m bench.streams --url ws://host:5000 --streams 10 # a server already running elsewhere

Each stream is a camera of its own: a moving face (a photograph from ../shared/data, or scikit-image's
astronaut, drifting and turning), one frame every 1/30 s on its own schedule (phases spread over the frame
interval), each after a {"timestamp"} message, never waiting for answers. The server drops a frame only when
the stream's next one arrives before it was served. A step passes when no frame was dropped and the p99
latency (a frame's send to its answer, measured here) is at most 50 ms; the report gives the largest passing
step and its frames/s. Every step is bounded in time; the server (started here unless --url) is stopped at
the end. The load generator (asyncio, the `websockets` client) shares the cores with the server: its own CPU
is in the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from bench.photos import make_photos
from bench.procstats import sample_tree
from nosetrack.launcher import NosetrackProcess

FPS = 30.0
SEQUENCE_FRAMES = 90
JPEG_QUALITY = 85
TARGET_P99_MS = 50.0
ANSWER_GRACE_SECONDS = 2.0


def moving_sequence(photo: Path) -> list[bytes]:
    """The photograph drifting, turning up to 10 degrees and zooming 10%, as 640x480 JPEGs (a webcam's)."""
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    height, width = image.shape[:2]
    frames = []
    for index in range(SEQUENCE_FRAMES):
        phase = 2 * math.pi * index / SEQUENCE_FRAMES
        turn = cv2.getRotationMatrix2D(
            (width / 2, height / 2), 10 * math.sin(phase), 1 + 0.1 * math.cos(phase)
        )
        turn[0, 2] += 50 * math.sin(phase)
        moved = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REFLECT)
        frames.append(cv2.imencode(".jpg", moved, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes())
    return frames


@dataclass
class StreamTally:
    sent: int = 0
    answered: int = 0
    tracked: int = 0
    dropped: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)


async def run_stream(url: str, frames: list[bytes], seconds: float, phase: float, tally: StreamTally) -> None:
    from websockets.asyncio.client import connect

    sent_at: dict[int, float] = {}
    async with connect(url, compression=None, max_size=None, open_timeout=10) as websocket:

        async def receive() -> None:
            async for message in websocket:
                answer = json.loads(message)
                number = answer["error"].get("frame") if "error" in answer else answer["frame"]
                if number is None:
                    continue
                tally.dropped += answer.get("dropped", 0)
                if "error" in answer:
                    tally.errors += 1
                    continue
                tally.answered += 1
                tally.tracked += any(face.get("tracked") for face in answer.get("faces", []))
                tally.latencies_ms.append((time.perf_counter() - sent_at.pop(number)) * 1000.0)
                tally.server_ms.append(answer["latency_ms"])
                if tally.answered + tally.dropped + tally.errors >= tally.sent and sending.done():
                    return

        async def send() -> None:
            started = time.perf_counter() + phase
            for number in range(int(seconds * FPS)):
                await asyncio.sleep(max(0.0, started + number / FPS - time.perf_counter()))
                await websocket.send(json.dumps({"timestamp": number / FPS}))
                sent_at[number] = time.perf_counter()
                tally.sent += 1
                await websocket.send(frames[number % len(frames)])

        sending = asyncio.ensure_future(send())
        receiving = asyncio.ensure_future(receive())
        await sending
        try:
            await asyncio.wait_for(receiving, ANSWER_GRACE_SECONDS)
        except TimeoutError:
            receiving.cancel()


async def run_step(url: str, sequences: list[list[bytes]], streams: int, seconds: float) -> list[StreamTally]:
    tallies = [StreamTally() for _ in range(streams)]
    await asyncio.gather(
        *(
            run_stream(url, sequences[index % len(sequences)], seconds, random.uniform(0, 1 / FPS), tally)
            for index, tally in enumerate(tallies)
        )
    )
    return tallies


def percentile(values: list[float], fraction: float) -> float | None:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1))] if ordered else None


def summarize(streams: int, seconds: float, tallies: list[StreamTally], server_cpu: float, client_cpu: float):
    answered = sum(tally.answered for tally in tallies)
    row = {
        "streams": streams,
        "sent": sum(tally.sent for tally in tallies),
        "answered": answered,
        "dropped": sum(tally.dropped for tally in tallies),
        "errors": sum(tally.errors for tally in tallies),
        "frames_per_s": answered / seconds,
        "p50_ms": percentile([ms for tally in tallies for ms in tally.latencies_ms], 0.5),
        "p99_ms": percentile([ms for tally in tallies for ms in tally.latencies_ms], 0.99),
        "server_p99_ms": percentile([ms for tally in tallies for ms in tally.server_ms], 0.99),
        "server_cpu_cores": server_cpu / seconds,
        "client_cpu_cores": client_cpu / seconds,
    }
    row["unanswered"] = row["sent"] - answered - row["dropped"] - row["errors"]
    clean = row["dropped"] == row["errors"] == row["unanswered"] == 0
    row["passed"] = clean and row["p99_ms"] is not None and row["p99_ms"] <= TARGET_P99_MS
    return row


TABLE_HEAD = (
    "| streams | frames/s | dropped | errors | p50 ms | p99 ms | server p99 ms | server CPU | client CPU |\n"
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def table_row(row: dict) -> str:
    cells = [str(row["streams"]), f"{row['frames_per_s']:.1f}", str(row["dropped"])]
    cells.append(str(row["errors"] + row["unanswered"]))
    cells += ["-" if row[key] is None else f"{row[key]:.1f}" for key in ("p50_ms", "p99_ms", "server_p99_ms")]
    cells += [f"{row['server_cpu_cores']:.2f}", f"{row['client_cpu_cores']:.2f}"]
    return "| " + " | ".join(cells) + " |"


def measure_steps(
    args, url: str, server: NosetrackProcess | None, sequences: list[list[bytes]]
) -> list[dict]:
    """One step per stream count, each printed as it ends."""
    rows = []
    for streams in args.streams:
        cpu_before = sum(s.cpu_seconds for s in sample_tree(server.process.pid)) if server else 0.0
        client_before = time.process_time()
        tallies = asyncio.run(run_step(url, sequences, streams, args.seconds))
        server_cpu = (
            sum(s.cpu_seconds for s in sample_tree(server.process.pid)) - cpu_before if server else 0.0
        )
        rows.append(
            summarize(streams, args.seconds, tallies, server_cpu, time.process_time() - client_before)
        )
        print(table_row(rows[-1]), flush=True)
    return rows


def in_process_ms_per_frame(sequences: list[list[bytes]]) -> float:
    """CPU per frame of what the server does for a stream's frame, in one thread of this process: decode
    the JPEG and track it (one Tracker per sequence), as the stream path's reference."""
    from nosetrack.images import CheckedImage
    from nosetrack.models import load_model
    from nosetrack.predictor import track_checked
    from nosetrack.tracking import Tracker

    model = load_model()
    frames = 0
    started = time.thread_time()
    for sequence in sequences:
        tracker = Tracker()
        for number, data in enumerate(sequence * 2):
            track_checked(tracker, model, CheckedImage.check(data), number / FPS, 0)
            frames += 1
    return (time.thread_time() - started) * 1000 / frames


def start_server(args: argparse.Namespace, folder: Path) -> tuple[NosetrackProcess, str]:
    flags = ["--log-level", "WARNING", "--max-streams", str(max(args.streams)), *args.serve_args]
    server = NosetrackProcess(folder, *flags, env={"NOSETRACK_DRAIN_DELAY": "0"})
    return server, server.url.replace("http://", "ws://") + "/v1/track"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[2, 4, 6, 8, 10, 12, 14, 16])
    parser.add_argument("--seconds", type=float, default=10.0, help="each step's length (default 10)")
    parser.add_argument("--url", help="a running server's ws://.../v1/track (default: start one here)")
    parser.add_argument("--note", default="", help="what else ran on the machine, for the record")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("serve_args", nargs="*", help="after --: more `nosetrack serve` flags")
    args = parser.parse_args(argv)
    random.seed(0)
    with tempfile.TemporaryDirectory(prefix="nosetrack-streams-") as folder:
        photos = make_photos(Path(folder) / "photos")["640x480"]
        sequences = [moving_sequence(photo) for photo in photos]
        server, url = (None, args.url) if args.url else start_server(args, Path(folder))
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        header = {
            "commit": commit.stdout.strip(),
            "load_average_start": os.getloadavg(),
            "note": args.note,
            "frame_kb": round(statistics.mean(len(f) for s in sequences for f in s) / 1024, 1),
        }
        print(f"{url}; commit {header['commit']}; load average {header['load_average_start']}; {args.note}")
        print(f"{len(sequences)} moving 640x480 sequences, {header['frame_kb']} kB per JPEG, {FPS:g} fps\n")
        print(TABLE_HEAD)
        try:
            rows = measure_steps(args, url, server, sequences)
        finally:
            if server:
                server.stop()
        header["in_process_ms_per_frame"] = in_process_ms_per_frame(sequences)
    passing = [row for row in rows if row["passed"]]
    best = max(passing, key=lambda row: row["streams"]) if passing else None
    verdict = "no step passed"
    if best:
        verdict = f"{best['streams']} streams sustained ({best['frames_per_s']:.0f} frames/s, p99 "
        verdict += f"{best['p99_ms']:.1f} ms, none dropped)"
    load_end = os.getloadavg()
    print(f"\n{verdict}; target >= 16 streams (480 frames/s); load average at end {load_end}")
    if best:
        server_ms = best["server_cpu_cores"] / best["frames_per_s"] * 1000
        reference = header["in_process_ms_per_frame"]
        ratio = server_ms / reference
        print(f"server CPU per frame {server_ms:.2f} ms, in process {reference:.2f} ms: {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({**header, "load_average_end": load_end, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
