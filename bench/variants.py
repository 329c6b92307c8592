"""The built-in trackers side by side: CPU per 640x480 image in process, and accuracy on the annotated set.

    python -m bench.variants --out bench/results              # about a minute per model

CPU is the thread's time over the benchmark's 640x480 photos, decode included (`predictor.predict_bytes`),
so it holds up on a busy machine; accuracy is `nosetrack eval`'s on the annotated set.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench import stamp
from bench.photos import make_photos
from nosetrack.evaluation import ANNOTATED_SET, evaluate, model_predictor
from nosetrack.models import BUILTIN_MODELS, load_model
from nosetrack.predictor import predict_bytes

IMAGES_PER_ROUND = 200
ROUNDS = 3


def cpu_ms_per_image(model, bodies: list[bytes]) -> float:
    for body in bodies * 5:
        predict_bytes(model, body)
    rounds = []
    for _ in range(ROUNDS):
        started = time.thread_time()
        for index in range(IMAGES_PER_ROUND):
            predict_bytes(model, bodies[index % len(bodies)])
        rounds.append((time.thread_time() - started) * 1000 / IMAGES_PER_ROUND)
    return sorted(rounds)[ROUNDS // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write variants.md and variants.json here")
    parser.add_argument("--models", default=",".join(BUILTIN_MODELS))
    args = parser.parse_args()
    machine = stamp.machine()
    with tempfile.TemporaryDirectory(prefix="nosetrack-variants-") as folder:
        bodies = [path.read_bytes() for path in make_photos(Path(folder))["640x480"]]
    rows = {}
    for name in args.models.split(","):
        model = load_model(name)
        summary = evaluate(ANNOTATED_SET, model_predictor(model))
        figures = summary.summary()
        rows[name] = {
            "cpu_ms_per_image": cpu_ms_per_image(model, bodies),
            **{key: figures[key] for key in ("faces", "detection_rate", "median_error", "p90_error")},
            "group_photo_faces": [
                n for key, n in sorted(summary.face_counts.items()) if key.startswith("multi")
            ],
            "faces_on_no_face_images": figures["faces_on_no_face_images"],
        }
        print(name, rows[name], flush=True)
    stamp.finish(machine)
    lines = [
        "# The built-in trackers",
        "",
        f"{stamp.describe(machine)}; CPU: median of {ROUNDS} rounds of {IMAGES_PER_ROUND} images.",
        "",
        "| model | CPU ms per 640x480 image | detection | median | p90 | faces in the group photos "
        "| no-face photos |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| `{name}` | {row['cpu_ms_per_image']:.1f} | {row['detection_rate']:.1%} "
            f"| {row['median_error']:.2%} | {row['p90_error']:.2%} "
            f"| {', '.join(map(str, row['group_photo_faces']))} "
            f"| {row['faces_on_no_face_images']} |"
        )
    stamp.publish(args.out, "variants", lines, {"machine": machine, "models": rows})


if __name__ == "__main__":
    main()
