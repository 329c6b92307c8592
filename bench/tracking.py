"""Tracking benchmark: cost, steadiness, lag, error and robustness of nosetrack's tracker, side by side with
MediaPipe's own FaceMesh solution in tracking mode and nosetrack's stateless default, in one run.

    python -m bench.tracking [--data ../shared/data] [--photos 4] [--out bench/results]
    python -m bench.tracking --tune      # the filter-parameter grid, on other photos than the report's

The sequences are made from annotated photographs (bench/tracking_material.py), so every frame's truth is
known. Photos are split in two: even positions tune the filter (--tune), odd positions are reported.
Timings exclude JPEG decode (measured beside it, cv2 against simplejpeg) and are taken with the systems
interleaved sequence by sequence, so that the machine's load falls on all of them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

from bench import tracking_metrics as metrics
from bench.tracking_material import (
    FPS,
    Sequence,
    crossing,
    cut,
    leaves_and_returns,
    load_photos,
    moving,
    still,
)
from bench.tracking_report import markdown
from bench.tracking_systems import (
    MirroredSteps,
    Run,
    mediapipe_step,
    rgb,
    stateless_step,
    timed_run,
    tracker_step,
)
from nosetrack.evaluation import ANNOTATED_SET
from nosetrack.models import load_model
from nosetrack.tracking import TrackerOptions

DATA = ANNOTATED_SET


def decoded(sequence: Sequence) -> tuple[list[np.ndarray], dict[str, float]]:
    """The frames decoded by OpenCV, and the median ms per frame of cv2.imdecode and simplejpeg."""
    import simplejpeg

    cv2_ms, simple_ms, images = [], [], []
    for data in sequence.jpegs:
        started = time.perf_counter()
        images.append(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
        between = time.perf_counter()
        simplejpeg.decode_jpeg(data, colorspace="BGR")
        cv2_ms.append(between - started)
        simple_ms.append(time.perf_counter() - between)
    return images, {"cv2.imdecode": 1000 * np.median(cv2_ms), "simplejpeg": 1000 * np.median(simple_ms)}


def run_system(name: str, model, images: list[np.ndarray], sequence: Sequence, faces: int = 1) -> Run:
    timestamps = sequence.timestamps
    if name == "mediapipe":
        step, close = mediapipe_step(faces)
        try:
            return timed_run(step, rgb(images), timestamps)
        finally:
            close()
    if name == "stateless":
        return timed_run(stateless_step(model), images, timestamps)
    if name == "tracker + mirror":
        return timed_run(tracker_step(MirroredSteps(model)), images, timestamps)
    return timed_run(tracker_step(model), images, timestamps)


SYSTEMS = ("mediapipe", "stateless", "tracker", "tracker + mirror")


def cost_and_accuracy(model, sequences: list[Sequence]) -> dict:
    """Every system on every moving sequence, in rotating order; ms per frame, error, lag."""
    runs: dict[str, list[Run]] = {name: [] for name in SYSTEMS}
    decode = []
    for number, sequence in enumerate(sequences):
        images, decode_ms = decoded(sequence)
        decode.append(decode_ms)
        order = SYSTEMS[number % len(SYSTEMS) :] + SYSTEMS[: number % len(SYSTEMS)]
        for name in order:
            runs[name].append(run_system(name, model, images, sequence))
    figures = {}
    for name, system_runs in runs.items():
        frames = sum(len(run.seconds) for run in system_runs)
        tracked = [
            s for run in system_runs for s, ran in zip(run.seconds, run.detector_ran, strict=True) if not ran
        ]
        figures[name] = {
            "ms_per_frame": 1000 * sum(sum(run.seconds) for run in system_runs) / frames,
            "cpu_ms_per_frame": 1000 * sum(run.cpu_seconds for run in system_runs) / frames,
            "tracked_frame_ms_median": 1000 * float(np.median(tracked)) if tracked else None,
            "detector_frames": sum(sum(run.detector_ran) for run in system_runs),
            "frames": frames,
            "error_median_pct": float(
                np.median(
                    np.concatenate(
                        [metrics.errors(s, r) for s, r in zip(sequences, system_runs, strict=True)]
                    )
                )
            ),
            "raw_error_median_pct": float(
                np.median(
                    np.concatenate(
                        [
                            metrics.errors(s, r, smoothed=False)
                            for s, r in zip(sequences, system_runs, strict=True)
                        ]
                    )
                )
            ),
            "missed_faces": sum(metrics.misses(s, r) for s, r in zip(sequences, system_runs, strict=True)),
            "lag_frames": [
                metrics.lag_frames(s, r, smoothed=True) for s, r in zip(sequences, system_runs, strict=True)
            ],
            "raw_lag_frames": [
                metrics.lag_frames(s, r, smoothed=False) for s, r in zip(sequences, system_runs, strict=True)
            ],
        }
    return {"systems": figures, "decode_ms": {k: float(np.median([d[k] for d in decode])) for k in decode[0]}}


def steadiness(model, sequences: list[Sequence], options: TrackerOptions | None = None) -> dict:
    """Jitter on still sequences: the tracker's raw and smoothed nose, the stateless default, MediaPipe."""
    rows = {"tracker raw": [], "tracker smoothed": [], "stateless": [], "mediapipe": []}
    for sequence in sequences:
        images, _ = decoded(sequence)
        tracked = timed_run(tracker_step(model, options), images, sequence.timestamps)
        rows["tracker raw"].append(metrics.jitter(tracked, smoothed=False))
        rows["tracker smoothed"].append(metrics.jitter(tracked, smoothed=True))
        if options is None:
            rows["stateless"].append(metrics.jitter(run_system("stateless", model, images, sequence), False))
            rows["mediapipe"].append(metrics.jitter(run_system("mediapipe", model, images, sequence), False))
    return {name: values for name, values in rows.items() if values}


def robustness(model, photos: list, background: np.ndarray) -> dict:
    """Faces that leave and return, two faces that cross, and cuts; the tracker and MediaPipe."""
    results: dict[str, list] = {"leaves": [], "crossing": [], "cut": []}
    pairs = list(zip(photos, photos[1:] + photos[:1], strict=True))
    for number, photo in enumerate(photos):
        sequence = leaves_and_returns(photo, seed=number)
        images, _ = decoded(sequence)
        for name in ("tracker", "mediapipe"):
            run = run_system(name, model, images, sequence)
            results["leaves"].append(
                {
                    "sequence": sequence.name,
                    "system": name,
                    "frozen_frames": metrics.frozen_frames(sequence, run),
                    "missed_faces": metrics.misses(sequence, run),
                }
            )
    for number, (first, second) in enumerate(pairs):
        for sequence, key in (
            (crossing(first, second, background, number), "crossing"),
            (cut(first, second, number), "cut"),
        ):
            images, _ = decoded(sequence)
            for name in ("tracker", "mediapipe"):
                run = run_system(name, model, images, sequence, faces=2)
                row = {
                    "sequence": sequence.name,
                    "system": name,
                    "missed_faces": metrics.misses(sequence, run),
                }
                if key == "crossing" and name == "tracker":
                    row |= metrics.id_swaps(sequence, run)
                if key == "cut":
                    row["frames_to_find"] = metrics.frames_to_find_after_cut(sequence, run)
                results[key].append(row)
    return results


def tune(model, photos: list) -> list[dict]:
    """The filter grid on the tuning photos: jitter ratio on still sequences, lag and error on moving ones
    (beside the raw nose's error, the floor that smoothing starts from)."""
    stills = [still(photo, seed=n) for n, photo in enumerate(photos)]
    movings = [moving(photo, seed=n) for n, photo in enumerate(photos)]
    decoded_moving = [decoded(s)[0] for s in movings]
    rows = []
    for min_cutoff, beta, d_cutoff in itertools.product(
        (0.5, 1.0, 2.0, 3.0), (1.0, 4.0, 16.0, 64.0), (1.0, 4.0)
    ):
        options = TrackerOptions(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)
        jitters = steadiness(model, stills, options)
        pairs = [
            (s, timed_run(tracker_step(model, options), images, s.timestamps))
            for s, images in zip(movings, decoded_moving, strict=True)
        ]
        lags = [metrics.lag_frames(s, r, True) for s, r in pairs]
        row = {"min_cutoff": min_cutoff, "beta": beta, "d_cutoff": d_cutoff}
        row["jitter_ratio"] = float(np.median(np.array(jitters["tracker smoothed"]) / jitters["tracker raw"]))
        row["lag_frames"], row["lag_frames_max"] = float(np.median(lags)), float(np.max(lags))
        row["error_median_pct"] = float(np.median(np.concatenate([metrics.errors(s, r) for s, r in pairs])))
        row["raw_error_median_pct"] = float(
            np.median(np.concatenate([metrics.errors(s, r, smoothed=False) for s, r in pairs]))
        )
        rows.append(row)
        print(row, flush=True)
    return rows


def stamp() -> dict:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return {
        "commit": commit.stdout.strip(),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=DATA, help="the annotated photographs (labels.csv, images/)"
    )
    parser.add_argument("--photos", type=int, default=4, help="photos per half (tuning, report)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--tune", action="store_true", help="run the filter grid on the tuning photos")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    model = load_model()
    photos = load_photos(args.data, 2 * args.photos, lambda frame: len(model.predict(frame).faces) == 1)
    tuning, report = photos[0::2], photos[1::2]
    args.out.mkdir(parents=True, exist_ok=True)
    started = stamp()
    if args.tune:
        rows = tune(model, tuning)
        (args.out / "tracking_tune.json").write_text(
            json.dumps({"stamp": started, "photos": [p.path.name for p in tuning], "grid": rows}, indent=2)
        )
        return
    background = cv2.imread(str(args.data / "no_face" / "skimage_coffee.png"), cv2.IMREAD_COLOR)
    options = TrackerOptions()
    results = {
        "stamp": started,
        "options": dataclasses.asdict(options),
        "photos": [photo.path.name for photo in report],
        "fps": FPS,
        "moving": cost_and_accuracy(model, [moving(photo, seed=n) for n, photo in enumerate(report)]),
        "still": steadiness(model, [still(photo, seed=n) for n, photo in enumerate(report)]),
        "robustness": robustness(model, report, background),
        "loadavg_after": stamp()["loadavg"],
    }
    (args.out / "tracking.json").write_text(json.dumps(results, indent=2, default=float))
    (args.out / "tracking.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
