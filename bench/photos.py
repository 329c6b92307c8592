"""The benchmark's request bodies: real face photographs, cropped and resized to 640x480 and 1280x720 JPEGs.

The photographs come from the annotated set (../shared/data, evaluation use only, so nothing derived from them
is committed); without it, scikit-image's astronaut stands in.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from nosetrack.evaluation import ANNOTATED_SET

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720)}
PHOTOS_PER_SIZE = 4
JPEG_QUALITY = 95


def _labelled_single_faces(data_dir: Path) -> list[tuple[Path, float, float]]:
    """Landscape photos at least 1280 px wide with one labelled face: (path, nose x, nose y)."""
    rows: dict[str, list[dict]] = {}
    with open(data_dir / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(row["file"], []).append(row)
    chosen = []
    for name, faces in sorted(rows.items()):
        (face,) = faces if len(faces) == 1 else (None,)
        if face and int(face["width"]) >= 1280 and int(face["width"]) > int(face["height"]):
            chosen.append((data_dir / "images" / name, float(face["nose_x"]), float(face["nose_y"])))
    return chosen


def _crop_to_aspect(
    image: np.ndarray, width: int, height: int, centre_x: float, centre_y: float
) -> np.ndarray:
    """The largest crop of the wanted aspect ratio, as near the face as the borders allow."""
    rows, cols = image.shape[:2]
    crop_w = min(cols, round(rows * width / height))
    crop_h = min(rows, round(crop_w * height / width))
    left = int(np.clip(centre_x - crop_w / 2, 0, cols - crop_w))
    top = int(np.clip(centre_y - crop_h / 2, 0, rows - crop_h))
    return image[top : top + crop_h, left : left + crop_w]


def _sources() -> list[tuple[np.ndarray, float, float]]:
    if (ANNOTATED_SET / "labels.csv").exists():
        found = []
        for path, nose_x, nose_y in _labelled_single_faces(ANNOTATED_SET)[:PHOTOS_PER_SIZE]:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                found.append((image, nose_x, nose_y))
        if found:
            return found
    from skimage import data

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    return [(astronaut, 230.0, 130.0)]


def make_photos(folder: Path) -> dict[str, list[Path]]:
    """Write the JPEGs for every size into `folder`; return their paths by size name."""
    folder.mkdir(parents=True, exist_ok=True)
    photos: dict[str, list[Path]] = {}
    for index, (image, nose_x, nose_y) in enumerate(_sources()):
        for size_name, (width, height) in SIZES.items():
            crop = _crop_to_aspect(image, width, height, nose_x, nose_y)
            interpolation = cv2.INTER_AREA if crop.shape[1] > width else cv2.INTER_CUBIC
            resized = cv2.resize(crop, (width, height), interpolation=interpolation)
            path = folder / f"face{index}_{size_name}.jpg"
            cv2.imwrite(str(path), resized, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            photos.setdefault(size_name, []).append(path)
    return photos
