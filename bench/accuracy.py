"""Does decoding JPEGs at reduced size cost accuracy? Nose error on ../shared/data at each `decode_min_side`.

    python -m bench.accuracy [--data ../shared/data] [--sides 0,1280,960,640] [--out bench/results]

0 is the full-size decode. Also counts the faces found in the group photos (multi_face/) and the photos
without a face (no_face/), where small faces and false detections would show a change.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import stamp
from nosetrack import load_model
from nosetrack.evaluation import ANNOTATED_SET, evaluate
from nosetrack.predictor import predict_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ANNOTATED_SET)
    parser.add_argument("--sides", default="0,1280,960,640", help="decode_min_side values to compare")
    parser.add_argument("--out", type=Path, help="also write accuracy.md here")
    args = parser.parse_args()
    model = load_model()
    machine = stamp.machine()
    lines = [
        "| decode_min_side | faces | detection | nose error median | p90 | faces: multi_face/ | no_face/ |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines))
    for side in (int(s) for s in args.sides.split(",")):

        def predict_file(path: Path, side: int = side):
            return predict_bytes(model, path.read_bytes(), decode_min_side=side)

        summary = evaluate(args.data, predict_file).summary()
        extra = [
            sum(len(predict_file(path).faces) for path in sorted((args.data / folder).iterdir()))
            for folder in ("multi_face", "no_face")
        ]
        lines.append(
            f"| {side} | {summary['faces']} | {summary['detection_rate']:.1%} | "
            f"{summary['median_error']:.2%} | {summary['p90_error']:.2%} | {extra[0]} | {extra[1]} |"
        )
        print(lines[-1], flush=True)
    described = stamp.describe(stamp.finish(machine))
    print(described)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        title = "# Accuracy of the reduced-size JPEG decode (`python -m bench.accuracy`)"
        (args.out / "accuracy.md").write_text("\n".join([title, "", described, "", *lines, ""]))


if __name__ == "__main__":
    main()
