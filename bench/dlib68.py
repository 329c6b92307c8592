"""The default model and the opt-in dlib68 side by side: accuracy on the annotated set, and CPU per photo and
per tracked frame.

    python -m bench.dlib68 --out bench/results        # a few minutes; needs pip install -e '.[dlib,bench]'

Accuracy is `nosetrack eval`'s on ../shared/data, over every measurable face and over the faces annotated by
300-W's own scheme that dlib's predictor never trained on (the `scheme` column: HELEN's test photos and the
300-W challenge's indoor photos; the predictor was trained on 300-W's training photos). The group and no-face
photos count the faces found. CPU is the thread's time: per 640x480 photo decode included
(`predictor.predict_bytes` on the benchmark's photos, as `bench.variants` measures it), and per frame of the
video tracker on synthetic 640x480 moving sequences (`bench.tracking`'s, decode excluded).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench import stamp
from bench import tracking_metrics as metrics
from bench.photos import make_photos
from bench.tracking_material import load_photos, moving
from bench.tracking_systems import timed_run, tracker_step
from nosetrack.evaluation import ANNOTATED_SET, FaceOutcome, evaluate, model_predictor
from nosetrack.models import load_model

MODELS = ("facemesh", "dlib68")
# The faces dlib's predictor never saw that 300-W's annotators labelled by its own convention.
UNSEEN_SCHEMES = ("ibug68_300W_human",)
IMAGES_PER_ROUND = 40
ROUNDS = 9
TRACKED_SEQUENCES = 3


def unseen_lines(data: Path) -> set[int]:
    """The labels.csv lines of faces annotated by 300-W's scheme on photos outside its training set."""
    with open(data / "labels.csv", newline="") as handle:
        return {
            line
            for line, row in enumerate(csv.DictReader(handle), start=2)
            if row.get("scheme", "").startswith(UNSEEN_SCHEMES)
        }


def figures(outcomes: list[FaceOutcome]) -> dict[str, float]:
    errors = np.array([o.error for o in outcomes if o.error is not None])
    return {
        "faces": len(outcomes),
        "found": sum(o.found for o in outcomes) / max(1, len(outcomes)),
        "median": float(np.median(errors)),
        "p90": float(np.percentile(errors, 90)),
        "within_5_percent": float((errors < 0.05).mean()),
    }


def cpu_ms_per_photo(models: dict, bodies: list[bytes]) -> dict[str, float]:
    """Each model's CPU ms per photo: the median of `ROUNDS` rounds, the models taking turns in each, so
    that a busy machine slows them alike."""
    from nosetrack.predictor import predict_bytes

    rounds: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():
        for body in bodies * 3:
            predict_bytes(model, body)
    for _ in range(ROUNDS):
        for name, model in models.items():
            started = time.thread_time()
            for index in range(IMAGES_PER_ROUND):
                predict_bytes(model, bodies[index % len(bodies)])
            rounds[name].append((time.thread_time() - started) * 1000 / IMAGES_PER_ROUND)
    return {name: float(np.median(values)) for name, values in rounds.items()}


def tracked(model, sequences) -> dict[str, float]:
    """CPU ms per frame of the tracker (decode excluded) and its smoothed nose's median error on the video."""
    frames, cpu, errors = 0, 0.0, []
    for sequence in sequences:
        images = [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for data in sequence.jpegs]
        run = timed_run(tracker_step(model), images, sequence.timestamps)
        frames += len(images)
        cpu += run.cpu_seconds
        errors.append(metrics.errors(sequence, run))
    return {
        "cpu_ms_per_frame": 1000 * cpu / frames,
        "error_median_pct": float(np.median(np.concatenate(errors))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ANNOTATED_SET)
    parser.add_argument("--out", type=Path, help="write dlib68.md and dlib68.json here")
    args = parser.parse_args()
    machine = stamp.machine()
    unseen = unseen_lines(args.data)
    with tempfile.TemporaryDirectory(prefix="nosetrack-dlib68-") as folder:
        bodies = [path.read_bytes() for path in make_photos(Path(folder))["640x480"]]
    models = {name: load_model(name) for name in MODELS}
    one_face = lambda frame: len(models["facemesh"].predict(frame).faces) == 1  # noqa: E731
    sequences = [
        moving(photo, seed) for seed, photo in enumerate(load_photos(args.data, TRACKED_SEQUENCES, one_face))
    ]
    cpu = cpu_ms_per_photo(models, bodies)
    rows = {}
    for name, model in models.items():
        report = evaluate(args.data, model_predictor(model))
        rows[name] = {
            "all_faces": figures(report.outcomes),
            "unseen_300w_faces": figures([o for o in report.outcomes if o.label.line in unseen]),
            "group_photo_faces": {
                k: n for k, n in sorted(report.face_counts.items()) if k.startswith("multi")
            },
            "faces_on_no_face_photos": sum(
                n for k, n in report.face_counts.items() if k.startswith("no_face")
            ),
            "cpu_ms_per_640x480_photo": cpu[name],
            "tracked_video": tracked(model, sequences),
        }
        print(name, rows[name], flush=True)
    rows["dlib68"]["fallbacks"] = fallbacks(models["dlib68"], args.data)
    stamp.finish(machine)
    publish(args.out, machine, rows, len(sequences))


def fallbacks(model, data: Path) -> dict[str, int]:
    """How often dlib68 answered with the default's nose (its predictor could not place the face)."""
    counts = {"dlib68": 0, "facemesh": 0}
    for path in sorted((data / "images").iterdir()):
        for face in model.predict(path).faces:
            counts[face.nose_source] += 1
    return counts


def publish(out: Path | None, machine: dict, rows: dict, sequences: int) -> None:
    def pct(value: float) -> str:
        return f"{value:.2%}"

    lines = [
        "# The default model and dlib68 side by side (`python -m bench.dlib68`)",
        "",
        f"{stamp.describe(machine)}. CPU: the thread's time, median of {ROUNDS} rounds of {IMAGES_PER_ROUND} "
        f"640x480 photos, the models taking turns (decode included); tracked frames: {sequences} moving "
        "640x480 sequences of `bench.tracking` (decode excluded).",
        "",
        "| model | faces found | median | p90 | within 5% | unseen 300-W faces: found | median | p90 "
        "| within 5% | group photos: faces | no-face photos | CPU ms / 640x480 photo "
        "| CPU ms / tracked frame | video error, median |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        every, unseen = row["all_faces"], row["unseen_300w_faces"]
        lines.append(
            f"| `{name}` | {every['found']:.1%} of {every['faces']} | {pct(every['median'])} "
            f"| {pct(every['p90'])} "
            f"| {every['within_5_percent']:.1%} | {unseen['found']:.1%} of {unseen['faces']} "
            f"| {pct(unseen['median'])} | {pct(unseen['p90'])} | {unseen['within_5_percent']:.1%} "
            f"| {', '.join(str(n) for n in row['group_photo_faces'].values())} "
            f"| {row['faces_on_no_face_photos']} "
            f"| {row['cpu_ms_per_640x480_photo']:.1f} | {row['tracked_video']['cpu_ms_per_frame']:.1f} "
            f"| {row['tracked_video']['error_median_pct']:.2f}% |"
        )
    counts = rows["dlib68"]["fallbacks"]
    lines += [
        "",
        f"dlib68's noses on the labelled photos: {counts['dlib68']} from its predictor, {counts['facemesh']} "
        'fallen back to the default\'s (`nose_source` "facemesh").',
    ]
    stamp.publish(out, "dlib68", lines, {"machine": machine, "models": rows})


if __name__ == "__main__":
    main()
