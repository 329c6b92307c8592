"""bench/tracking_footage.py's results as Markdown: the targets of issue 20, then the figures behind them."""

from __future__ import annotations

import numpy as np


def default_name(results: dict) -> str:
    """The system of the bench that runs the default options of that run."""
    every = results["options"]["mirror_every"]
    return f"tracker, mirror every {every}" if every else "tracker, no mirror"


def targets(results: dict) -> list[tuple[str, float, float]]:
    """(target, figure, limit): each is met when the figure is at most its limit."""
    report, default = results["panning_report"], default_name(results)
    shots = [row for row in results["shots"]["clips"] if row["system"] == "tracker"]
    found = [99 if n is None else n for row in shots for n in row["frames_to_find_after_cut"]]
    cpu = results["shots"]["cpu_ms_per_frame"]
    return [
        (
            "error: tracked median - stateless median, % eye distance (held-out faces)",
            report[default]["error_median_pct"] - report["stateless"]["error_median_pct"],
            0.3,
        ),
        ("cuts: ids that survive a cut", sum(row["ids_surviving_cuts"] for row in shots), 0),
        ("cuts: frames until every new face is found (worst)", max(found), 2),
        (
            "cost: tracker CPU / MediaPipe tracking mode, three-shot clips",
            cpu["tracker"] / cpu["mediapipe"],
            0.5,
        ),
        ("jitter: smoothed / raw at rest (median)", results["still"]["jitter_ratio_median"], 1 / 3),
        (
            "lag: smoothed nose behind the truth, frames (median)",
            float(np.median(report[default]["lag_frames"])),
            1,
        ),
    ]


def markdown(results: dict) -> str:
    stamp = results["stamp"]
    lines = [
        "# Tracking II: bench/tracking_footage.py",
        "",
        f"Commit {stamp['commit']}, {stamp['cpus']} CPUs, load average {' '.join(stamp['loadavg'])} before "
        f"and {' '.join(results['loadavg_after'])} after. Default options: {results['options']}.",
        f"Reported (held-out) photos: {', '.join(results['photos']['report'])}.",
        "",
        "| target | figure | limit | met |",
        "|---|---:|---:|---|",
    ]
    lines += [
        f"| {name} | {value:.2f} | {limit:.2f} | {'yes' if value <= limit else 'no'} |"
        for name, value, limit in targets(results)
    ]
    for half in ("choosing", "report"):
        lines += [
            "",
            f"Panning sequences, {half} half ({len(results['photos'][half])} faces, 90 frames each, "
            "+-15 degrees, +-15% scale; decode excluded):",
            "",
            "| system | nose error median % (raw) | CPU ms/frame | lag, frames | missed |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in results[f"panning_{half}"].items():
            error = f"{row['error_median_pct']:.2f} ({row['raw_error_median_pct']:.2f})"
            lag = np.median(row["lag_frames"])
            lines.append(
                f"| {name} | {error} | {row['cpu_ms_per_frame']:.2f} | {lag:.2f} | {row['missed_faces']} |"
            )
    shots = results["shots"]
    lines += [
        "",
        "Three-shot clips (two faces, a close-up where the smaller face was, a face the same size in the "
        "same place on another background):",
        "",
        "| system | ids surviving cuts | frames to find each new face | ids per face | CPU ms/frame |",
        "|---|---:|---|---|---:|",
    ]
    for name, cpu in shots["cpu_ms_per_frame"].items():
        rows = [row for row in shots["clips"] if row["system"] == name]
        found = [n for r in rows for n in r["frames_to_find_after_cut"]]
        if name == "mediapipe":  # it reports no ids
            survivors, ids = "-", "- (no ids)"
        else:
            survivors = sum(r["ids_surviving_cuts"] for r in rows)
            ids = [n for r in rows for n in r["ids_per_face"]]
        lines.append(f"| {name} | {survivors} | {found} | {ids} | {cpu:.2f} |")
    lines += [
        "",
        f"Scene-change measure: smallest at a cut {shots['change_at_cuts_min']:.3f}, largest elsewhere "
        f"{shots['change_elsewhere_max']:.3f} (threshold {results['options']['cut_threshold']}).",
        "",
        "A face lying on its side appears: frames until found (None: never) — "
        + "; ".join(f"{name}: {values}" for name, values in results["turned"].items())
        + ".",
        "",
        f"Jitter at rest, smoothed / raw, per still sequence: "
        f"{[round(r, 3) for r in results['still']['jitter_ratios']]}.",
    ]
    return "\n".join(lines) + "\n"
