"""Test material made from an annotated set: rotated copies of its photos, and group photos of its faces.

Both keep the labels: the copies are written as annotated sets (images/ + labels.csv) that `nosetrack eval`
and `evaluate` measure like any other. Rotated copies are JPEGs without EXIF, as a phone photo arrives when
its orientation tag was lost; group photos paste many faces, scaled small, on a background made up here
(no photograph), so that every face in them is labelled.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from .evaluation import EYE_COLUMNS, LabelledFace, read_labels

JPEG_QUALITY = 95
LABEL_COLUMNS = ("file", "nose_x", "nose_y", *EYE_COLUMNS)
# A pasted face is a disc of this many inter-ocular distances across: forehead to chin, ear to ear.
FACE_PATCH_SIDE = 3.2


def _moved(face: LabelledFace, matrix: np.ndarray, file: str) -> LabelledFace:
    """`face` with every point through the 2x3 affine `matrix`, in the image `file`."""

    def move(point: tuple[float, float]) -> tuple[float, float]:
        x, y = matrix @ np.array([point[0], point[1], 1.0])
        return float(x), float(y)

    eyes = None if face.eyes is None else (move(face.eyes[0]), move(face.eyes[1]))
    return LabelledFace(file, move(face.nose), eyes)


def rotate_labelled(
    image: np.ndarray, faces: list[LabelledFace], degrees: float
) -> tuple[np.ndarray, list[LabelledFace]]:
    """The image turned `degrees` counter-clockwise on a canvas that holds all of it, and its faces.

    Quarter turns move whole pixels (`np.rot90`); other angles resample, with black corners.
    """
    height, width = image.shape[:2]
    if degrees % 90 == 0:
        quarters = int(degrees // 90) % 4
        turned = np.ascontiguousarray(np.rot90(image, quarters))
        # np.rot90 moves pixel (x, y) to (y, width - 1 - x), once per quarter.
        matrix = np.eye(3)
        for _ in range(quarters):
            step = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, width - 1.0], [0.0, 0.0, 1.0]])
            matrix = step @ matrix
            width, height = height, width
        affine = matrix[:2]
    else:
        affine = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), degrees, 1.0)
        corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], float) @ affine.T
        new_width, new_height = np.ceil(corners.max(axis=0) - corners.min(axis=0)).astype(int)
        affine[:, 2] += [(new_width - width) / 2.0, (new_height - height) / 2.0]
        turned = cv2.warpAffine(image, affine, (int(new_width), int(new_height)), flags=cv2.INTER_LINEAR)
    return turned, [_moved(face, affine, face.file) for face in faces]


def write_labels(path: Path, faces: Iterable[LabelledFace]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LABEL_COLUMNS)
        for face in faces:
            eyes = [f"{v:.3f}" for eye in face.eyes for v in eye] if face.eyes else ["", "", "", ""]
            writer.writerow([face.file, f"{face.nose[0]:.3f}", f"{face.nose[1]:.3f}", *eyes])


def write_jpeg(path: Path, image: np.ndarray) -> None:
    """A plain JPEG: OpenCV writes no EXIF, so no orientation tag can undo a rotation."""
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"could not write {path}")


def write_rotated_set(
    data_dir: Path, out_dir: Path, degrees: float, files: Iterable[str] | None = None
) -> Path:
    """`data_dir`'s labelled photos (or those in `files`) turned by `degrees`, as an annotated set."""
    labels = read_labels(data_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    written: list[LabelledFace] = []
    for name in files if files is not None else sorted(labels):
        image = cv2.imread(str(data_dir / "images" / name), cv2.IMREAD_COLOR)
        turned, faces = rotate_labelled(image, labels[name], degrees)
        target = f"{Path(name).stem}.jpg"
        write_jpeg(out_dir / "images" / target, turned)
        written += [LabelledFace(target, face.nose, face.eyes) for face in faces]
    write_labels(out_dir / "labels.csv", written)
    return out_dir


def made_up_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Blotches of muted colour at several scales, grain, and straight-edged shapes: clutter with edges and
    texture, and nothing that is a face."""
    canvas = np.zeros((height, width, 3), np.float32)
    for cell, strength in ((160, 60.0), (40, 25.0), (8, 10.0)):
        blotches = rng.normal(0.0, strength, (height // cell + 2, width // cell + 2, 3)).astype(np.float32)
        canvas += cv2.resize(blotches, (width, height), interpolation=cv2.INTER_CUBIC)
    grey = canvas.mean(axis=2, keepdims=True)
    canvas = 120.0 + grey + 0.5 * (canvas - grey) + rng.normal(0.0, 4.0, (height, width, 1))
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    for _ in range(width * height // 100_000):
        colour = tuple(int(c) for c in rng.integers(30, 225, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        if rng.random() < 0.5:
            size = rng.integers(20, max(21, width // 8), 2)
            cv2.rectangle(
                image, (x, y), (x + int(size[0]), y + int(size[1])), colour, int(rng.choice([-1, 3]))
            )
        else:
            end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(image, (x, y), end, colour, int(rng.integers(1, 8)), cv2.LINE_AA)
    return image


def _face_patch(image: np.ndarray, face: LabelledFace, interocular: float) -> tuple[np.ndarray, np.ndarray]:
    """A square around `face`, scaled to `interocular`, and the affine map from the photo to it."""
    left, right = np.array(face.eyes)
    centre = ((left + right) / 2.0 + np.array(face.nose)) / 2.0
    scale = interocular / face.interocular
    side = round(FACE_PATCH_SIDE * interocular)
    matrix = np.array(
        [[scale, 0.0, side / 2.0 - scale * centre[0]], [0.0, scale, side / 2.0 - scale * centre[1]]]
    )
    patch = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return patch, matrix


def group_photo(
    data_dir: Path,
    size: tuple[int, int] = (3800, 2300),
    count: int = 24,
    interocular: tuple[float, float] = (50.0, 80.0),
    seed: int = 0,
    file: str = "group.jpg",
) -> tuple[np.ndarray, list[LabelledFace]]:
    """`count` labelled faces of `data_dir`, scaled to an inter-ocular distance drawn from `interocular` and
    pasted as soft-edged discs, one per cell of a grid with jittered places, on a made-up background.

    Only faces at least 1.25 times larger than wanted are used, so that every face is scaled down.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    labels = read_labels(data_dir)
    sources = [
        face
        for name in sorted(labels)
        for face in labels[name]
        if face.interocular and face.interocular >= 1.25 * interocular[1]
    ]
    if len(sources) < count:
        raise ValueError(f"{data_dir} has {len(sources)} faces large enough to paste, not {count}.")
    chosen = [sources[i] for i in rng.choice(len(sources), count, replace=False)]
    canvas = made_up_background(width, height, rng)
    columns = int(np.ceil(np.sqrt(count * width / height)))
    rows = int(np.ceil(count / columns))
    cell_w, cell_h = width / columns, height / rows
    pasted = []
    for index, face in enumerate(chosen):
        photo = cv2.imread(str(data_dir / "images" / face.file), cv2.IMREAD_COLOR)
        patch, to_patch = _face_patch(photo, face, rng.uniform(*interocular))
        side = patch.shape[0]
        spare_x, spare_y = max(0.0, cell_w - side) / 2.0, max(0.0, cell_h - side) / 2.0
        left = int((index % columns + 0.5) * cell_w - side / 2.0 + rng.uniform(-spare_x, spare_x))
        top = int((index // columns + 0.5) * cell_h - side / 2.0 + rng.uniform(-spare_y, spare_y))
        left, top = int(np.clip(left, 0, width - side)), int(np.clip(top, 0, height - side))
        ys, xs = np.mgrid[0:side, 0:side] - (side - 1) / 2.0
        radius = np.hypot(xs / (0.47 * side), ys / (0.5 * side))
        alpha = np.clip((1.0 - radius) / 0.15, 0.0, 1.0)[..., None]
        region = canvas[top : top + side, left : left + side].astype(np.float32)
        canvas[top : top + side, left : left + side] = (alpha * patch + (1.0 - alpha) * region).astype(
            np.uint8
        )
        to_canvas = to_patch + np.array([[0.0, 0.0, left], [0.0, 0.0, top]])
        pasted.append(_moved(face, to_canvas, file))
    return canvas, pasted


def write_group_set(data_dir: Path, out_dir: Path, photos: int = 3, **options) -> Path:
    """`photos` group photos (`group_photo`, seeds 0, 1, ...) as an annotated set."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    written: list[LabelledFace] = []
    for seed in range(photos):
        name = f"group_{seed}.jpg"
        image, faces = group_photo(data_dir, seed=seed, file=name, **options)
        write_jpeg(out_dir / "images" / name, image)
        written += faces
    write_labels(out_dir / "labels.csv", written)
    return out_dir
