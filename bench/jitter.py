"""Jitter and speed of the nose on a short webcam-like sequence made from one photograph.

    python -m bench.jitter [--frames 60] [--shift 3]

Each 640x480 frame is skimage's astronaut photograph moved by a known sub-pixel shift (a slow random walk of
up to `--shift` pixels per frame), then JPEG-encoded at quality 80 as a webcam would. Undoing the known shift,
a perfect tracker would report the same nose every frame; what moves is jitter. Reported per configuration:
the standard deviation of that shift-corrected nose position (pixels, x and y pooled), the RMS of its
frame-to-frame change, and the median time per frame on one thread (noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from skimage import data

from nosetrack.images import decode_image
from nosetrack.models import PHOTO_VIEWS, load_model
from nosetrack.models.blazeface import SHORT_RANGE
from nosetrack.models.nose_tracker import NoseTracker, NoseTrackerOptions

CONFIGURATIONS = {
    "facemesh (default)": lambda: load_model("facemesh"),
    "facemesh, no mirrored crop": lambda: NoseTracker(NoseTrackerOptions(views=PHOTO_VIEWS, mirror=False)),
    "facemesh-steady": lambda: load_model("facemesh-steady"),
    "facemesh-short-range": lambda: load_model("facemesh-short-range"),
    "before issue 6 (margin 1.5, two passes, no mirror)": lambda: NoseTracker(
        NoseTrackerOptions(
            crop_margin=1.5, refinements=1, refine_above=(0, 0), mirror=False, min_detection_score=0.5
        )
    ),
    "before issue 6, short range": lambda: NoseTracker(
        NoseTrackerOptions(
            SHORT_RANGE,
            crop_margin=1.5,
            refinements=1,
            refine_above=(0, 0),
            mirror=False,
            min_detection_score=0.5,
        )
    ),
}


def make_sequence(frames: int, max_step: float, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """JPEG-decoded 640x480 frames and each frame's shift (x, y) of the photograph."""
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    steps = np.random.default_rng(seed).uniform(-max_step, max_step, size=(frames, 2))
    shifts = np.cumsum(steps, axis=0) + np.array([64.0, -16.0])
    images = []
    for dx, dy in shifts:
        moved = cv2.warpAffine(
            photo, np.float32([[1, 0, dx], [0, 1, dy]]), (640, 480), borderValue=(90, 90, 90)
        )
        _, jpeg = cv2.imencode(".jpg", moved, [cv2.IMWRITE_JPEG_QUALITY, 80])
        images.append(decode_image(jpeg.tobytes()))
    return images, shifts


def measure(model, images: list[np.ndarray], shifts: np.ndarray) -> tuple[float, float, float, int]:
    noses, times = [], []
    for image in images:
        started = time.perf_counter()
        prediction = model.predict(image)
        times.append(time.perf_counter() - started)
        noses.append(
            [prediction.faces[0].nose_x, prediction.faces[0].nose_y] if prediction.faces else [np.nan] * 2
        )
    steady = np.array(noses) - shifts  # where the nose is on the unmoved photograph
    found = ~np.isnan(steady[:, 0])
    steady = steady[found]
    spread = float(np.sqrt(steady.var(axis=0).mean()))
    change = float(np.sqrt((np.diff(steady, axis=0) ** 2).sum(axis=1).mean() / 2))
    return spread, change, float(np.median(times) * 1000), int(found.sum())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--shift", type=float, default=3.0, help="largest step per frame, pixels")
    args = parser.parse_args()
    images, shifts = make_sequence(args.frames, args.shift)
    print(f"{args.frames} frames 640x480, steps up to {args.shift} px\n")
    print("| configuration | nose std (px) | frame-to-frame RMS (px) | ms per frame | frames with a face |")
    print("|---|---|---|---|---|")
    for name, build in CONFIGURATIONS.items():
        model = build()
        model.predict(images[0])
        spread, change, ms, found = measure(model, images, shifts)
        print(f"| {name} | {spread:.2f} | {change:.2f} | {ms:.1f} | {found}/{len(images)} |")


if __name__ == "__main__":
    main()
