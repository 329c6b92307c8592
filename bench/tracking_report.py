"""bench/tracking.py's figures as Markdown, each target beside its figure."""

from __future__ import annotations

import numpy as np


def _number(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def cost_table(moving: dict) -> list[str]:
    systems = moving["systems"]
    mediapipe = systems["mediapipe"]
    lines = [
        "| system | ms/frame (wall) | CPU ms/frame | vs MediaPipe (wall, CPU) | median tracked frame ms | "
        "detector frames | nose error median % (raw) | missed | lag, frames (median, max) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in systems.items():
        lags = row["lag_frames"]
        lines.append(
            f"| {name} | {_number(row['ms_per_frame'])} | {_number(row['cpu_ms_per_frame'])} | "
            f"{row['ms_per_frame'] / mediapipe['ms_per_frame']:.2f}x, "
            f"{row['cpu_ms_per_frame'] / mediapipe['cpu_ms_per_frame']:.2f}x | "
            f"{_number(row['tracked_frame_ms_median'])} | {row['detector_frames']} of {row['frames']} | "
            f"{_number(row['error_median_pct'])} ({_number(row['raw_error_median_pct'])}) | "
            f"{row['missed_faces']} | {_number(float(np.median(lags)))}, {_number(max(lags))} |"
        )
    decode = moving["decode_ms"]
    lines.append("")
    lines.append(
        "JPEG decode of the same 640x480 frames (median ms, not in the figures above): "
        + ", ".join(f"{name} {ms:.2f}" for name, ms in decode.items())
        + "."
    )
    return lines


def targets(results: dict) -> list[str]:
    systems = results["moving"]["systems"]
    tracker, mediapipe, stateless = systems["tracker"], systems["mediapipe"], systems["stateless"]
    still = results["still"]
    ratio = float(np.median(np.array(still["tracker smoothed"]) / np.array(still["tracker raw"])))
    robust = results["robustness"]
    tracker_rows = {key: [row for row in rows if row["system"] == "tracker"] for key, rows in robust.items()}
    found = [row["frames_to_find"] for row in tracker_rows["cut"]]
    checks = [
        (
            "cost: tracker <= 0.6x MediaPipe's tracking mode (wall)",
            tracker["ms_per_frame"] / mediapipe["ms_per_frame"],
            0.6,
        ),
        (
            "cost: tracker <= 0.6x MediaPipe's tracking mode (CPU)",
            tracker["cpu_ms_per_frame"] / mediapipe["cpu_ms_per_frame"],
            0.6,
        ),
        ("jitter: smoothed / raw on still sequences (median)", ratio, 1 / 3),
        (
            "lag: smoothed nose behind the truth, frames (median)",
            float(np.median(tracker["lag_frames"])),
            1.0,
        ),
        (
            "error: tracker median - stateless median, % eye distance",
            tracker["error_median_pct"] - stateless["error_median_pct"],
            0.3,
        ),
        ("ids: swaps when two faces cross", sum(row["swaps"] for row in tracker_rows["crossing"]), 0),
        (
            "cut: frames until the new face is found (worst)",
            max(f if f is not None else 99 for f in found),
            2,
        ),
        (
            "leaves: frames reporting a face that is out of the frame",
            sum(r["frozen_frames"] for r in tracker_rows["leaves"]),
            0,
        ),
    ]
    lines = ["| target | figure | limit | met |", "|---|---:|---:|---|"]
    for name, figure, limit in checks:
        lines.append(
            f"| {name} | {_number(figure)} | {_number(limit)} | {'yes' if figure <= limit else 'NO'} |"
        )
    return lines


def robustness_table(robust: dict) -> list[str]:
    lines = ["| sequence | system | missed faces | details |", "|---|---|---:|---|"]
    for rows in robust.values():
        for row in rows:
            details = ", ".join(
                f"{k} {v}" for k, v in row.items() if k not in ("sequence", "system", "missed_faces")
            )
            lines.append(f"| {row['sequence']} | {row['system']} | {row['missed_faces']} | {details} |")
    return lines


def markdown(results: dict) -> str:
    stamp = results["stamp"]
    still = results["still"]
    lines = [
        "# Tracking benchmark",
        "",
        f"`python -m bench.tracking` at commit {stamp['commit']}, {stamp['cpus']} CPUs, load average "
        f"{' '.join(stamp['loadavg'])} at the start and {' '.join(results['loadavg_after'])} at the end. "
        f"Photos: {', '.join(results['photos'])}. Tracker options: {results['options']}.",
        "",
        "## Targets",
        "",
        *targets(results),
        "",
        "## Cost and accuracy on the moving sequences (640x480, 30 fps, decode excluded)",
        "",
        *cost_table(results["moving"]),
        "",
        "## Jitter on the still sequences (frame-to-frame RMS of the nose, pixels, per photo)",
        "",
        "| system | " + " | ".join(f"photo {n + 1}" for n in range(len(still["tracker raw"]))) + " |",
        "|---|" + "---:|" * len(still["tracker raw"]),
        *(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |" for name, values in still.items()),
        "",
        "## Faces that leave, two faces that cross, cuts",
        "",
        *robustness_table(results["robustness"]),
        "",
    ]
    return "\n".join(lines)
