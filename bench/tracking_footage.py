"""Tracking II: a tracked nose as good as a photo's, on what real footage does (issue 20).

    python -m bench.tracking_footage [--data ../shared/data] [--photos 8] [--out bench/results]

Made from annotated photographs (bench/footage_material.py), so every frame's truth is known. The photos are
split: even positions choose the default (the mirrored pass's schedule, from the accuracy/cost trade), odd
positions are reported (held out). In one process, interleaved sequence by sequence:

- **accuracy and cost** on panning sequences (+-15 degrees, +-15% scale, 90 frames at 30 fps): nosetrack's
  stateless default, the tracker with the mirrored pass every 1, 2, 4, 8 frames or never, and MediaPipe's
  FaceMesh solution in tracking mode (decode excluded; CPU time of the process);
- **jitter and lag** of the default: still sequences (smoothed/raw jitter), the panning ones (lag);
- **shots**: clips of three shots joined by hard cuts (a close-up where a background face was; a face the same
  size in the same place on another background): ids that survive a cut, frames until each new face is found,
  ids per face within a shot, and the CPU per frame against MediaPipe's tracking mode (`max_num_faces=2`);
- **turned**: a face lying on its side appears: frames until the tracker finds it, with and without the
  turned views in re-detection;
- the scene-change measure: its largest value on frames that are not cuts, and its smallest at the cuts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np

from bench import tracking_metrics as metrics
from bench.footage_material import backgrounds, cut_starts, panning, shots, three_shots, turned
from bench.tracking import decoded, stamp
from bench.tracking_material import Sequence, load_photos, still
from bench.tracking_systems import Run, mediapipe_step, rgb, stateless_step, timed_run, tracker_step
from nosetrack.evaluation import ANNOTATED_SET
from nosetrack.models import load_model
from nosetrack.tracking import Tracker, TrackerOptions
from nosetrack.tracking.scene import SceneCuts

MIRROR_SCHEDULES = (1, 2, 4, 8, 0)
BACKGROUNDS = ("skimage_coffee.png", "skimage_rocket.jpg", "skimage_chelsea.png")


def system_name(every: int) -> str:
    return f"tracker, mirror every {every}" if every else "tracker, no mirror"


def run_named(name: str, model, images: list[np.ndarray], sequence: Sequence, faces: int = 1) -> Run:
    if name == "mediapipe":
        step, close = mediapipe_step(faces)
        try:
            return timed_run(step, rgb(images), sequence.timestamps)
        finally:
            close()
    if name == "stateless":
        return timed_run(stateless_step(model), images, sequence.timestamps)
    every = next(e for e in MIRROR_SCHEDULES if system_name(e) == name)
    return timed_run(tracker_step(model, TrackerOptions(mirror_every=every)), images, sequence.timestamps)


def trade(model, sequences: list[Sequence]) -> dict:
    """Every system on every panning sequence: error (smoothed, raw), CPU per frame."""
    names = ["stateless", "mediapipe", *(system_name(e) for e in MIRROR_SCHEDULES)]
    runs: dict[str, list[Run]] = {name: [] for name in names}
    for number, sequence in enumerate(sequences):
        images, _ = decoded(sequence)
        for name in names[number % len(names) :] + names[: number % len(names)]:
            runs[name].append(run_named(name, model, images, sequence))
    figures = {}
    for name, system_runs in runs.items():
        pairs = list(zip(sequences, system_runs, strict=True))
        frames = sum(len(run.frames) for run in system_runs)
        smoothed = [metrics.errors(s, r) for s, r in pairs]
        raw = [metrics.errors(s, r, smoothed=False) for s, r in pairs]
        figures[name] = {
            "error_median_pct": float(np.median(np.concatenate(smoothed))),
            "raw_error_median_pct": float(np.median(np.concatenate(raw))),
            "per_sequence_median_pct": [float(np.median(e)) if e.size else None for e in smoothed],
            "cpu_ms_per_frame": 1000 * sum(run.cpu_seconds for run in system_runs) / frames,
            "missed_faces": sum(metrics.misses(s, r) for s, r in pairs),
            "lag_frames": [metrics.lag_frames(s, r, smoothed=True) for s, r in pairs],
        }
    return figures


def steadiness(model, photos: list, options: TrackerOptions) -> dict:
    ratios = []
    for number, photo in enumerate(photos):
        sequence = still(photo, seed=number)
        run = timed_run(tracker_step(model, options), decoded(sequence)[0], sequence.timestamps)
        ratios.append(metrics.jitter(run, smoothed=True) / metrics.jitter(run, smoothed=False))
    return {"jitter_ratio_median": float(np.median(ratios)), "jitter_ratios": ratios}


def matched_ids(run: Run, sequence: Sequence, frames: range, slot: int) -> list[int]:
    ids = []
    for n in frames:
        truth = sequence.truths[n][slot]
        face = metrics.nearest(run.frames[n], truth) if truth is not None else None
        if face is not None and face.id is not None:
            ids.append(face.id)
    return ids


def shot_figures(run: Run, sequence: Sequence, starts: list[int]) -> dict:
    """Ids that survive each cut, frames until each new face is found, distinct ids per face."""
    slots = len(sequence.truths[0])
    survivors, to_find, ids_per_face = 0, [], []
    for slot in range(slots):
        frames = [n for n, truths in enumerate(sequence.truths) if truths[slot] is not None]
        begin, end = frames[0], frames[-1] + 1
        ids = matched_ids(run, sequence, range(begin, end), slot)
        ids_per_face.append(len(set(ids)))
        if begin in starts:
            found = next((n for n in range(begin, end) if n < len(run.frames) and
                          metrics.nearest(run.frames[n], sequence.truths[n][slot])), None)  # fmt: skip
            to_find.append(None if found is None else found - begin)
            before = {face.id for faces in run.frames[:begin] for face in faces}
            survivors += len(set(ids) & before)
    return {
        "ids_surviving_cuts": survivors,
        "frames_to_find_after_cut": to_find,
        "ids_per_face": ids_per_face,
    }


def cuts_and_ids(model, report: list, pictures: list[np.ndarray]) -> dict:
    """The three-shot clips, each from four of the reported photos: the tracker with and without cut
    detection, and MediaPipe's tracking mode (its CPU is the cost target's yardstick)."""
    rows, cpu = [], {"tracker": 0.0, "tracker, no cut detection": 0.0, "mediapipe": 0.0}
    frames, changes_at_cuts, changes_elsewhere = 0, [], []
    for number in range(0, len(report), 2):
        photos = [report[(number + k) % len(report)] for k in range(4)]
        clip = three_shots(photos, pictures[number % len(pictures) :] + pictures[: number % len(pictures)])
        sequence = shots(" / ".join(p.path.stem for p in photos), clip, seed=number)
        starts = cut_starts(clip)
        images, _ = decoded(sequence)
        frames += len(images)
        cuts = SceneCuts(TrackerOptions().cut_threshold)
        for n, image in enumerate(images):
            cuts.is_cut(image)
            (changes_at_cuts if n in starts else changes_elsewhere).append(cuts.change)
        for name in cpu:
            if name == "mediapipe":
                run = run_named("mediapipe", model, images, sequence, faces=2)
            else:
                options = TrackerOptions(cut_threshold=0.0) if "no cut" in name else TrackerOptions()
                run = timed_run(tracker_step(model, options), images, sequence.timestamps)
            cpu[name] += run.cpu_seconds
            rows.append({"clip": sequence.name, "system": name, **shot_figures(run, sequence, starts)})
    return {
        "clips": rows,
        "cpu_ms_per_frame": {name: 1000 * seconds / frames for name, seconds in cpu.items()},
        "change_at_cuts_min": float(min(changes_at_cuts)),
        "change_elsewhere_max": float(max(changes_elsewhere)),
    }


class UprightOnly:
    """The default model, its re-detection limited to the upright views (as before issue 20)."""

    def __init__(self, model) -> None:
        self._model = model
        self.info = model.info

    def predict(self, image):
        return self._model.predict(image)

    def detect_crops(self, image, quarter_turns: int = 0):
        return self._model.detect_crops(image) if quarter_turns == 0 else []

    def mesh_on_crop(self, image, crop, mirror: bool = False):
        return self._model.mesh_on_crop(image, crop, mirror)


def turned_faces(model, report: list) -> dict:
    """Frames until a face lying on its side is found after it appears (None: never)."""
    figures: dict[str, list] = {"tracker": [], "tracker, upright views only": []}
    for number, photo in enumerate(report):
        sequence = turned(photo, seed=number)
        images, _ = decoded(sequence)
        appears = next(n for n, truths in enumerate(sequence.truths) if truths[0] is not None)
        for name, system in (("tracker", model), ("tracker, upright views only", UprightOnly(model))):
            tracker = Tracker()
            found = None
            for n, (image, at) in enumerate(zip(images, sequence.timestamps, strict=True)):
                faces = tracker.update(system, image, float(at)).faces
                truth = sequence.truths[n][0]
                near = truth is not None and any(
                    np.hypot(f.raw.nose_x - truth.nose[0], f.raw.nose_y - truth.nose[1]) < truth.eye_distance
                    for f in faces
                )
                if near and found is None:
                    found = n - appears
            figures[name].append(found)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ANNOTATED_SET)
    parser.add_argument("--photos", type=int, default=8, help="photos per half (choosing, report)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    model = load_model()
    photos = load_photos(args.data, 2 * args.photos, lambda frame: len(model.predict(frame).faces) == 1)
    choosing, report = photos[0::2], photos[1::2]
    pictures = backgrounds([args.data / "no_face" / name for name in BACKGROUNDS])
    results = {"stamp": stamp(), "options": dataclasses.asdict(TrackerOptions())}
    results["photos"] = {"choosing": [p.path.name for p in choosing], "report": [p.path.name for p in report]}
    for half, chosen in (("choosing", choosing), ("report", report)):
        sequences = [panning(photo, seed=n) for n, photo in enumerate(chosen)]
        results[f"panning_{half}"] = trade(model, sequences)
        errors = {name: round(row["error_median_pct"], 2) for name, row in results[f"panning_{half}"].items()}
        print(half, json.dumps(errors), flush=True)
    results["still"] = steadiness(model, report, TrackerOptions())
    results["shots"] = cuts_and_ids(model, report, pictures)
    results["turned"] = turned_faces(model, report)
    results["loadavg_after"] = stamp()["loadavg"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tracking_footage.json").write_text(json.dumps(results, indent=2, default=float))
    from bench.tracking_footage_report import markdown

    (args.out / "tracking_footage.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
