"""Nose accuracy on an annotated set laid out like shared/data: labels.csv beside images/.

`no_face/` and `multi_face/` beside them, when present, are counted too: no face should be reported on the
first, and every face on the second (group photos without labels).
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .answer import prediction_from_answer
from .images import IMAGE_SUFFIXES, UNLIMITED_PIXELS, ImageError, read_image
from .models.base import Face, Model, Prediction
from .predictor import predict_bytes

REQUIRED_COLUMNS = ("file", "nose_x", "nose_y")
EYE_COLUMNS = ("left_eye_x", "left_eye_y", "right_eye_x", "right_eye_y")
LABELS_HELP = (
    "labels.csv has a header row and one row per annotated face, in pixels with (0, 0) at the centre of the "
    "top-left pixel: file (the image's name in images/), nose_x, nose_y; and, optionally, left_eye_x, "
    "left_eye_y, right_eye_x, right_eye_y (the centres of the eyes on the image's left and right). With "
    "the eyes, errors are shares of the inter-ocular distance; without them (empty cells), pixels, and the "
    "face's size comes from the predicted box. Other columns are ignored."
)
MIN_INTEROCULAR_PIXELS = 10.0
# A labelled face counts as found when a predicted nose lies within half an inter-ocular distance.
DETECTION_RADIUS = 0.5
# A FaceMesh box (the landmarks' extent) is about 2.4 inter-ocular distances on a side (geometric mean of
# its width and height, ../shared/data): the face size of a face labelled without its eyes.
BOX_SIDE_PER_INTEROCULAR = 2.4

# The project's annotated photographs, ../shared/data beside a checkout of this repository, as the tests and
# bench/ find them (NOSETRACK_ANNOTATED_SET points elsewhere).
ANNOTATED_SET = Path(
    os.environ.get("NOSETRACK_ANNOTATED_SET", Path(__file__).resolve().parents[3] / "shared" / "data")
)

PredictFile = Callable[[Path], Prediction]
# Wraps a list of image names as they are worked through (a progress bar on a terminal).
Progress = Callable[[list[str]], Iterable[str]]


class EvaluationError(ValueError):
    """The annotated set cannot be measured as it is; the message says what to fix."""


@dataclass(frozen=True)
class LabelledFace:
    """One annotated face: its nose, and the centres of its eyes (image-left, image-right) when labelled."""

    file: str
    nose: tuple[float, float]
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None
    line: int = 0  # in labels.csv, for messages

    @property
    def interocular(self) -> float | None:
        return None if self.eyes is None else float(np.hypot(*np.subtract(self.eyes[1], self.eyes[0])))

    @property
    def roll(self) -> float | None:
        """How far the eye line is turned in the picture, in degrees: 0 upright, 180 upside down."""
        if self.eyes is None:
            return None
        dx, dy = np.subtract(self.eyes[1], self.eyes[0])
        return float(abs(np.degrees(np.arctan2(dy, dx))))

    @property
    def turn(self) -> float | None:
        """How far the nose lies to the side of the eyes' midpoint, along the eye line, in inter-ocular
        distances: about 0 for a frontal face, growing as the head turns away."""
        if self.eyes is None:
            return None
        left, right = np.array(self.eyes)
        along = (right - left) / np.hypot(*(right - left))
        return float(abs((np.array(self.nose) - (left + right) / 2) @ along) / self.interocular)


@dataclass(frozen=True)
class FaceOutcome:
    label: LabelledFace
    predicted: tuple[float, float] | None = None  # the matched nose; None when the face was missed
    face_size: float | None = None  # inter-ocular distance: labelled, else from the predicted box

    @property
    def found(self) -> bool:
        return self.predicted is not None

    @property
    def pixel_error(self) -> float | None:
        if self.predicted is None:
            return None
        return float(np.hypot(*np.subtract(self.predicted, self.label.nose)))

    @property
    def error(self) -> float | None:
        """Nose error / labelled inter-ocular distance; None when missed or labelled without eyes."""
        if self.predicted is None or self.label.interocular is None:
            return None
        return self.pixel_error / self.label.interocular


def error_figures(outcomes: list[FaceOutcome]) -> dict[str, float]:
    """Faces, share found, and the relative and pixel errors (median, p90) of `outcomes`."""
    relative = np.array([o.error for o in outcomes if o.error is not None])
    pixels = np.array([o.pixel_error for o in outcomes if o.found])
    nan = float("nan")
    return {
        "faces": len(outcomes),
        "detection_rate": sum(o.found for o in outcomes) / max(1, len(outcomes)),
        "median_error": float(np.median(relative)) if relative.size else nan,
        "p90_error": float(np.percentile(relative, 90)) if relative.size else nan,
        "median_pixel_error": float(np.median(pixels)) if pixels.size else nan,
        "p90_pixel_error": float(np.percentile(pixels, 90)) if pixels.size else nan,
    }


def bucket_name(value: float | None, buckets: tuple[tuple[str, float], ...], last: str) -> str:
    """The first bucket whose upper bound `value` is under; `last` above them all, "unknown" for None."""
    if value is None:
        return "unknown"
    return next((name for name, upper in buckets if value < upper), last)


Buckets = tuple[tuple[str, float], ...]
# Each breakdown: the value that sorts a face, the buckets (name, upper bound), and the last bucket's name.
BREAKDOWNS: dict[str, tuple[Callable[[FaceOutcome], float | None], Buckets, str]] = {
    "face size (inter-ocular distance)": (
        lambda o: o.face_size,
        (("< 40 px", 40.0), ("40-80 px", 80.0), ("80-160 px", 160.0), ("160-320 px", 320.0)),
        ">= 320 px",
    ),
    "roll (eye line from level)": (
        lambda o: o.label.roll,
        (("0-15 deg", 15.0), ("15-30 deg", 30.0), ("30-60 deg", 60.0), ("60-120 deg", 120.0)),
        ">= 120 deg",
    ),
    "turn (nose beside the eyes' middle)": (
        lambda o: o.label.turn,
        (("frontal (< 0.1)", 0.1), ("turned (0.1-0.3)", 0.3)),
        "far turned (>= 0.3)",
    ),
}


@dataclass
class EvaluationReport:
    outcomes: list[FaceOutcome] = field(default_factory=list)
    seconds_per_image: float = 0.0
    # Faces reported per image of the unlabelled folders (no_face/, multi_face/), by "folder/file".
    face_counts: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> np.ndarray:
        return np.array([o.error for o in self.outcomes if o.error is not None])

    @property
    def detection_rate(self) -> float:
        return sum(o.found for o in self.outcomes) / max(1, len(self.outcomes))

    def summary(self) -> dict[str, float]:
        errors = self.errors
        found = errors.size > 0
        return {
            **error_figures(self.outcomes),
            "faces_with_eyes": sum(o.label.eyes is not None for o in self.outcomes),
            "mean_error": float(errors.mean()) if found else float("nan"),
            "share_under_5_percent": float((errors < 0.05).mean()) if found else 0.0,
            "ms_per_image": self.seconds_per_image * 1000.0,
            "faces_on_no_face_images": sum(
                n for k, n in self.face_counts.items() if k.startswith("no_face/")
            ),
        }

    def breakdown(self) -> dict[str, dict[str, dict[str, float]]]:
        """The figures by face size, by roll and by turn (buckets): where the errors are."""
        table = {}
        for title, (value, buckets, last) in BREAKDOWNS.items():
            members: dict[str, list[FaceOutcome]] = {name: [] for name, _ in buckets}
            members |= {last: [], "unknown": []}
            for outcome in self.outcomes:
                members[bucket_name(value(outcome), buckets, last)].append(outcome)
            table[title] = {name: error_figures(group) for name, group in members.items() if group}
        return table

    def worst(self, count: int | None) -> list[FaceOutcome]:
        """Missed faces first, then the largest errors for the face's size; all when `count` is None."""

        def badness(outcome: FaceOutcome) -> float:
            if not outcome.found:
                return np.inf
            return outcome.pixel_error / (outcome.face_size or 1.0)

        return sorted(self.outcomes, key=badness, reverse=True)[:count]

    def as_text(self) -> str:
        summary = self.summary()
        lines = [
            f"faces                    {summary['faces']} ({summary['faces_with_eyes']} with eye labels)",
            f"detection rate           {summary['detection_rate']:.1%}",
            "nose error / inter-ocular distance:",
            f"  median                 {summary['median_error']:.2%}",
            f"  mean                   {summary['mean_error']:.2%}",
            f"  p90                    {summary['p90_error']:.2%}",
            f"  share under 5%         {summary['share_under_5_percent']:.1%}",
            f"nose error in pixels     median {summary['median_pixel_error']:.1f}, "
            f"p90 {summary['p90_pixel_error']:.1f}",
            f"ms per image             {summary['ms_per_image']:.1f} (decoding included)",
        ]
        for title, rows in self.breakdown().items():
            lines.append(f"by {title:<36} faces  found  median    p90  median px")
            for name, row in rows.items():
                lines.append(
                    f"  {name:<37} {row['faces']:>5} {row['detection_rate']:>6.0%} "
                    f"{row['median_error']:>7.2%} {row['p90_error']:>6.2%} {row['median_pixel_error']:>10.1f}"
                )
        for name, count in sorted(self.face_counts.items()):
            lines.append(f"faces found in {name:<40} {count}")
        return "\n".join(lines)


def _number(row: dict, column: str, line: int) -> float:
    try:
        return float(row[column])
    except (TypeError, ValueError):
        raise EvaluationError(f"labels.csv line {line}: {column} is {row[column]!r}, not a number.") from None


def _eyes(row: dict, line: int) -> tuple[tuple[float, float], tuple[float, float]] | None:
    given = [(row.get(column) or "").strip() for column in EYE_COLUMNS]
    if not any(given):
        return None
    if not all(given):
        raise EvaluationError(
            f"labels.csv line {line}: give all four eye coordinates ({', '.join(EYE_COLUMNS)}) or none."
        )
    x0, y0, x1, y1 = (_number(row, column, line) for column in EYE_COLUMNS)
    return (x0, y0), (x1, y1)


def read_labels(data_dir: Path) -> dict[str, list[LabelledFace]]:
    """Labelled faces per image file; faces whose eyes are too close to measure are left out.

    `EvaluationError` with one sentence for a missing file or column, or a cell that is not a number.
    """
    path = data_dir / "labels.csv"
    if not path.is_file():
        raise EvaluationError(f"No labels.csv in {data_dir}. {LABELS_HELP}")
    faces: dict[str, list[LabelledFace]] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise EvaluationError(f"{path} has no column {', '.join(missing)}. {LABELS_HELP}")
        for line, row in enumerate(reader, start=2):
            nose = (_number(row, "nose_x", line), _number(row, "nose_y", line))
            face = LabelledFace(row["file"], nose, _eyes(row, line), line)
            if face.interocular is not None and face.interocular < MIN_INTEROCULAR_PIXELS:
                continue
            faces.setdefault(face.file, []).append(face)
    return faces


def face_size_from_box(face: Face) -> float | None:
    """The inter-ocular distance a predicted face's box suggests."""
    if face.box is None:
        return None
    return float(np.sqrt(face.box.width * face.box.height)) / BOX_SIDE_PER_INTEROCULAR


def match_faces(labels: Iterable[LabelledFace], prediction: Prediction) -> list[FaceOutcome]:
    """Each labelled face takes the nearest predicted nose within half an inter-ocular distance: the labelled
    one, or, for a face labelled without eyes, the one its predicted box suggests."""
    faces = prediction.faces
    noses = np.array([[f.nose_x, f.nose_y] for f in faces]).reshape(-1, 2)
    box_sizes = np.array([face_size_from_box(f) or np.nan for f in faces])
    outcomes = []
    for label in labels:
        distances = np.linalg.norm(noses - np.array(label.nose), axis=1)
        sizes = np.full(len(faces), label.interocular) if label.interocular else box_sizes
        within = np.flatnonzero(distances <= DETECTION_RADIUS * sizes)
        if within.size == 0:
            outcomes.append(FaceOutcome(label, face_size=label.interocular))
            continue
        nearest = within[distances[within].argmin()]
        outcomes.append(FaceOutcome(label, tuple(map(float, noses[nearest])), float(sizes[nearest])))
    return outcomes


def unlabelled_images(data_dir: Path, folders: Iterable[str] = ("no_face", "multi_face")) -> list[str]:
    """The images of the unlabelled folders, as "folder/file"."""
    return [
        f"{folder}/{path.name}"
        for folder in folders
        if (data_dir / folder).is_dir()
        for path in sorted((data_dir / folder).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]


def require_images(data_dir: Path, labels: dict[str, list[LabelledFace]], names: list[str]) -> None:
    """`EvaluationError` naming the images labels.csv lists that are not in images/."""
    absent = [name for name in names if not (data_dir / "images" / name).is_file()]
    if absent:
        shown = ", ".join(
            f"{name} (line {labels[name][0].line})" if name in labels else name for name in absent
        )
        raise EvaluationError(
            f"{len(absent)} image(s) named in labels.csv are not in {data_dir / 'images'}: {shown[:400]}"
        )


def _predict(predict_file: PredictFile, path: Path, name: str) -> Prediction:
    try:
        return predict_file(path)
    except ImageError as error:
        raise EvaluationError(f"{name}: {error}") from None


def evaluate(
    data_dir: Path,
    predict_file: PredictFile,
    files: Iterable[str] | None = None,
    count_unlabelled: bool = True,
    progress: Progress | None = None,
) -> EvaluationReport:
    """Run `predict_file` on every labelled image (or those in `files`) and score the noses.

    With `count_unlabelled`, the faces found on each image of no_face/ and multi_face/ are counted as well;
    the timing covers the labelled images only. `progress(names)` wraps the images as they are read (a bar
    on a terminal). `EvaluationError` when labels.csv or an image is unusable.
    """
    labels = read_labels(data_dir)
    names = list(files) if files is not None else sorted(labels)
    require_images(data_dir, labels, names)
    unlabelled = unlabelled_images(data_dir) if count_unlabelled else []
    report = EvaluationReport()
    started = time.perf_counter()
    timed_until = None
    for index, name in enumerate((progress or iter)([*names, *unlabelled])):
        if index < len(names):
            prediction = _predict(predict_file, data_dir / "images" / name, f"images/{name}")
            report.outcomes.extend(match_faces(labels[name], prediction))
            continue
        timed_until = timed_until or time.perf_counter()
        report.face_counts[name] = len(_predict(predict_file, data_dir / name, name).faces)
    report.seconds_per_image = ((timed_until or time.perf_counter()) - started) / max(1, len(names))
    return report


def draw_outcome(image: np.ndarray, outcome: FaceOutcome, tile_size: int = 256) -> np.ndarray:
    """A square tile around the labelled nose: the label as a green cross, the prediction as a red dot."""
    scale = tile_size / (3.0 * (outcome.face_size or tile_size / 3.0))
    centre_x, centre_y = outcome.label.nose
    to_tile = np.array(
        [[scale, 0, tile_size / 2 - scale * centre_x], [0, scale, tile_size / 2 - scale * centre_y]]
    )
    tile = cv2.warpAffine(
        image, to_tile, (tile_size, tile_size), flags=cv2.INTER_AREA, borderValue=(40, 40, 40)
    )
    middle = (tile_size // 2, tile_size // 2)
    cv2.drawMarker(tile, middle, (60, 220, 60), cv2.MARKER_CROSS, 18, 2, cv2.LINE_AA)
    if outcome.predicted is not None:
        x, y = to_tile @ np.array([*outcome.predicted, 1.0])
        cv2.circle(tile, (round(x), round(y)), 4, (40, 40, 230), -1, cv2.LINE_AA)
    if not outcome.found:
        caption = "missed"
    elif outcome.error is None:
        caption = f"{outcome.pixel_error:.1f} px"
    else:
        caption = f"{outcome.error:.1%}"
    for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(tile, caption, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, width, cv2.LINE_AA)
        cv2.putText(
            tile, outcome.label.file[-34:], (6, tile_size - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, width
        )
    return tile


def contact_sheet(
    data_dir: Path, outcomes: list[FaceOutcome], columns: int = 6, tile_size: int = 256
) -> np.ndarray:
    """The outcomes' tiles in rows: a picture of where the model goes wrong."""
    tiles = [draw_outcome(read_image(data_dir / "images" / o.label.file), o, tile_size) for o in outcomes]
    blank = np.zeros((tile_size, tile_size, 3), np.uint8)
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(rows) if rows else blank


def model_predictor(model: Model) -> PredictFile:
    """Predict in process, decoding each file as the server decodes an upload."""

    def predict_file(path: Path) -> Prediction:
        return predict_bytes(model, path.read_bytes(), max_pixels=UNLIMITED_PIXELS)

    return predict_file


def server_predictor(url: str) -> PredictFile:
    """Predict through a running server, as its clients do."""
    from .client import Client

    client = Client(url)
    return lambda path: prediction_from_answer(client.predict(path))
