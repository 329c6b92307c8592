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
from .images import IMAGE_SUFFIXES, UNLIMITED_PIXELS, read_image
from .models.base import Model, Prediction
from .predictor import predict_bytes

MIN_INTEROCULAR_PIXELS = 10.0
# A labelled face counts as found when a predicted nose lies within half an inter-ocular distance.
DETECTION_RADIUS = 0.5
# The project's annotated photographs, ../shared/data beside a checkout of this repository, as the tests and
# bench/ find them (NOSETRACK_ANNOTATED_SET points elsewhere).
ANNOTATED_SET = Path(
    os.environ.get("NOSETRACK_ANNOTATED_SET", Path(__file__).resolve().parents[3] / "shared" / "data")
)

PredictFile = Callable[[Path], Prediction]


@dataclass(frozen=True)
class LabelledFace:
    file: str
    nose: tuple[float, float]
    interocular: float


@dataclass
class FaceOutcome:
    label: LabelledFace
    error: float | None  # nose error / inter-ocular distance; None when no prediction is near
    predicted: tuple[float, float] | None = None  # the matched nose, for pictures


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
        return len(self.errors) / max(1, len(self.outcomes))

    def summary(self) -> dict[str, float]:
        errors = self.errors
        found = errors.size > 0
        return {
            "faces": len(self.outcomes),
            "detection_rate": self.detection_rate,
            "median_error": float(np.median(errors)) if found else float("nan"),
            "mean_error": float(errors.mean()) if found else float("nan"),
            "p90_error": float(np.percentile(errors, 90)) if found else float("nan"),
            "share_under_5_percent": float((errors < 0.05).mean()) if found else 0.0,
            "ms_per_image": self.seconds_per_image * 1000.0,
            "faces_on_no_face_images": sum(
                n for k, n in self.face_counts.items() if k.startswith("no_face/")
            ),
        }

    def worst(self, count: int) -> list[FaceOutcome]:
        """Missed faces first, then the largest errors."""
        return sorted(self.outcomes, key=lambda o: -np.inf if o.error is None else -o.error)[:count]

    def as_text(self) -> str:
        summary = self.summary()
        lines = [
            f"faces                    {summary['faces']}",
            f"detection rate           {summary['detection_rate']:.1%}",
            "nose error / inter-ocular distance:",
            f"  median                 {summary['median_error']:.2%}",
            f"  mean                   {summary['mean_error']:.2%}",
            f"  p90                    {summary['p90_error']:.2%}",
            f"  share under 5%         {summary['share_under_5_percent']:.1%}",
            f"ms per image             {summary['ms_per_image']:.1f} (decoding included)",
        ]
        for name, count in sorted(self.face_counts.items()):
            lines.append(f"faces found in {name:<40} {count}")
        return "\n".join(lines)


def read_labels(data_dir: Path) -> dict[str, list[LabelledFace]]:
    """Labelled faces per image file; faces too small to measure are left out."""
    faces: dict[str, list[LabelledFace]] = {}
    with open(data_dir / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            left = np.array([float(row["left_eye_x"]), float(row["left_eye_y"])])
            right = np.array([float(row["right_eye_x"]), float(row["right_eye_y"])])
            interocular = float(np.linalg.norm(left - right))
            if interocular < MIN_INTEROCULAR_PIXELS:
                continue
            nose = (float(row["nose_x"]), float(row["nose_y"]))
            faces.setdefault(row["file"], []).append(LabelledFace(row["file"], nose, interocular))
    return faces


def match_faces(labels: Iterable[LabelledFace], prediction: Prediction) -> list[FaceOutcome]:
    """Each labelled face takes the nearest predicted nose, if it lies within the detection radius."""
    noses = np.array([[f.nose_x, f.nose_y] for f in prediction.faces]).reshape(-1, 2)
    outcomes = []
    for label in labels:
        outcome = FaceOutcome(label, None)
        if len(noses):
            distances = np.linalg.norm(noses - np.array(label.nose), axis=1) / label.interocular
            nearest = int(distances.argmin())
            if distances[nearest] <= DETECTION_RADIUS:
                outcome = FaceOutcome(label, float(distances[nearest]), tuple(map(float, noses[nearest])))
        outcomes.append(outcome)
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


def evaluate(
    data_dir: Path,
    predict_file: PredictFile,
    files: Iterable[str] | None = None,
    count_unlabelled: bool = True,
) -> EvaluationReport:
    """Run `predict_file` on every labelled image (or those in `files`) and score the noses.

    With `count_unlabelled`, the faces found on each image of no_face/ and multi_face/ are counted as well;
    the timing covers the labelled images only.
    """
    labels = read_labels(data_dir)
    report = EvaluationReport()
    names = list(files) if files is not None else sorted(labels)
    started = time.perf_counter()
    for name in names:
        report.outcomes.extend(match_faces(labels[name], predict_file(data_dir / "images" / name)))
    report.seconds_per_image = (time.perf_counter() - started) / max(1, len(names))
    if count_unlabelled:
        for name in unlabelled_images(data_dir):
            report.face_counts[name] = len(predict_file(data_dir / name).faces)
    return report


def draw_outcome(image: np.ndarray, outcome: FaceOutcome, tile_size: int = 256) -> np.ndarray:
    """A square tile around the labelled nose: the label as a green cross, the prediction as a red dot."""
    scale = tile_size / (3.0 * outcome.label.interocular)
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
    caption = "missed" if outcome.error is None else f"{outcome.error:.1%}"
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
