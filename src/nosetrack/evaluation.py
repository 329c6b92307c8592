"""Nose accuracy on an annotated set laid out like shared/data: labels.csv beside images/."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .models.base import Prediction

MIN_INTEROCULAR_PIXELS = 10.0
# A labelled face counts as found when a predicted nose lies within half an inter-ocular distance.
DETECTION_RADIUS = 0.5


@dataclass(frozen=True)
class LabelledFace:
    file: str
    nose: tuple[float, float]
    interocular: float


@dataclass
class FaceOutcome:
    label: LabelledFace
    error: float | None  # nose error / inter-ocular distance; None when no prediction is near


@dataclass
class EvaluationReport:
    outcomes: list[FaceOutcome] = field(default_factory=list)
    seconds_per_image: float = 0.0

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
        }


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
        error = None
        if len(noses):
            distance = np.linalg.norm(noses - np.array(label.nose), axis=1).min() / label.interocular
            error = float(distance) if distance <= DETECTION_RADIUS else None
        outcomes.append(FaceOutcome(label, error))
    return outcomes


def evaluate(
    data_dir: Path, predict_file: Callable[[Path], Prediction], files: Iterable[str] | None = None
) -> EvaluationReport:
    """Run `predict_file` on every labelled image (or those in `files`) and score the noses."""
    labels = read_labels(data_dir)
    report = EvaluationReport()
    names = list(files) if files is not None else sorted(labels)
    started = time.perf_counter()
    for name in names:
        report.outcomes.extend(match_faces(labels[name], predict_file(data_dir / "images" / name)))
    report.seconds_per_image = (time.perf_counter() - started) / max(1, len(names))
    return report
