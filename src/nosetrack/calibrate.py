"""`nosetrack calibrate`: fit a user's nose point on their own annotated photos, and show it holds.

Every labelled face is read once (FaceMesh's landmarks, or dlib68's 68 points); the map of
`models.calibration` is then fitted k times, each time on all folds but one and measured on the one left out,
so that the figures printed are those of faces the fit did not see. The file written is the fit on every face.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .evaluation import (
    FaceOutcome,
    LabelledFace,
    Progress,
    error_figures,
    match_faces,
    read_labels,
    require_images,
)
from .images import read_image
from .models.base import Prediction
from .models.calibration import DEFAULT_STRENGTH, POINT_SETS, NoseCalibration, fit_calibration
from .models.face_mesh_reading import MeshReading, NosePoint
from .models.nose_tracker import NoseTracker

if TYPE_CHECKING:
    from .models.dlib68 import Dlib68Model


@dataclass(frozen=True)
class Sample:
    """A labelled face and FaceMesh's reading of it."""

    label: LabelledFace
    reading: MeshReading


def collect_samples(
    data_dir: Path, model: NoseTracker | Dlib68Model, progress: Progress | None = None
) -> tuple[list[Sample], int]:
    """The labelled faces the model finds, with their landmarks, and how many it missed. A dlib68 face whose
    nose fell back to FaceMesh's has no dlib landmarks: it counts as missed (left out). `progress(names)`
    wraps the images as they are read (a bar on a terminal)."""
    points = getattr(model, "points", "facemesh")
    labels = read_labels(data_dir)
    require_images(data_dir, labels, sorted(labels))
    samples, missed = [], 0
    for name in (progress or iter)(sorted(labels)):
        pixels = read_image(data_dir / "images" / name)
        read = model.read_faces(pixels)
        reading_at = {(item.face.nose_x, item.face.nose_y): item.reading for item in read}
        prediction = Prediction(pixels.shape[1], pixels.shape[0], [item.face for item in read])
        for outcome in match_faces(labels[name], prediction):
            if outcome.found and reading_at[outcome.predicted].point_set == points:
                samples.append(Sample(outcome.label, reading_at[outcome.predicted]))
            else:
                missed += 1
    return samples, missed


def outcome(sample: Sample, nose_point: NosePoint) -> FaceOutcome:
    nose = nose_point(sample.reading)
    size = sample.label.interocular or float(np.hypot(*np.subtract(*sample.reading.eye_centres())))
    return FaceOutcome(sample.label, (float(nose[0]), float(nose[1])), size)


def figures(outcomes: list[FaceOutcome]) -> dict[str, float]:
    """Median and p90 (of the inter-ocular distance, or pixels without eye labels) and the share under 5%."""
    relative = np.array([o.error for o in outcomes if o.error is not None])
    return {
        **error_figures(outcomes),
        "share_under_5_percent": float((relative < 0.05).mean()) if relative.size else 0.0,
    }


# The figures `as_text` prints: key, title, format, and whether higher is better.
FIGURES = (
    ("median_error", "median", ".2%", False),
    ("p90_error", "p90", ".2%", False),
    ("share_under_5_percent", "under 5%", ".1%", True),
    ("median_pixel_error", "median px", ".1f", False),
)


@dataclass
class CrossValidation:
    before: dict[str, float]
    after: dict[str, float]
    fold_numbers: np.ndarray  # folds x numbers: each fold's fit
    calibration: NoseCalibration  # fitted on every face

    def worse_figures(self) -> list[str]:
        """Each printed figure on which the calibration measured worse than FaceMesh's own tip, as printed
        ("p90 7.99% -> 8.25%"); a difference too small to show is none."""
        worse = []
        for key, title, form, higher_is_better in FIGURES:
            before, after = self.before[key], self.after[key]
            shown_before, shown_after = f"{before:{form}}", f"{after:{form}}"
            if shown_before != shown_after and ((after < before) if higher_is_better else (after > before)):
                worse.append(f"{title} {shown_before} -> {shown_after}")
        return worse

    @property
    def variation(self) -> float:
        """How much the fitted numbers move between folds, for their size: RMS spread over RMS mean."""
        spread = np.sqrt((self.fold_numbers.std(axis=0) ** 2).mean())
        return float(spread / max(np.sqrt((self.fold_numbers.mean(axis=0) ** 2).mean()), 1e-12))

    def as_text(self, folds: int) -> str:
        names = ["offset x", "offset y", *(f"weight of landmark {i}" for i in self.calibration.landmarks)]
        lines = [
            f"{folds}-fold cross-validation (each face measured by a fit that did not see it):",
            "                         median     p90   under 5%   median px",
        ]
        own = {"facemesh": "FaceMesh's own tip", "dlib68": "dlib68's point 30"}[self.calibration.points]
        for title, row in ((own, self.before), ("calibrated", self.after)):
            lines.append(
                f"  {title:<21} {row['median_error']:>7.2%} {row['p90_error']:>7.2%} "
                f"{row['share_under_5_percent']:>9.1%} {row['median_pixel_error']:>11.1f}"
            )
        lines.append("fitted numbers              all faces   folds: mean +- spread")
        means, spreads = self.fold_numbers.mean(axis=0), self.fold_numbers.std(axis=0)
        for name, value, mean, spread in zip(names, self.calibration.numbers, means, spreads, strict=True):
            lines.append(f"  {name:<25} {value:>9.4f}   {mean:>9.4f} +- {spread:.4f}")
        lines.append(f"variation between folds: {self.variation:.0%} of the numbers' size (RMS spread / RMS)")
        return "\n".join(lines)


def cross_validate(
    samples: list[Sample],
    folds: int = 5,
    landmarks: tuple[int, ...] | None = None,
    strength: float = DEFAULT_STRENGTH,
    fitted_on: str = "",
    seed: int = 0,
    points: str = "facemesh",
) -> CrossValidation:
    """Fit on all folds but one, measure on that one, for each fold; then fit on every face. `points`: whose
    landmarks the samples hold (FaceMesh's, or dlib68's); `landmarks`: the pulls (that set's default)."""
    if len(samples) < 2 * folds:
        raise ValueError(f"{len(samples)} faces are too few for {folds}-fold cross-validation.")
    landmarks = landmarks or POINT_SETS[points][1]

    def fit(chosen: list[Sample]) -> NoseCalibration:
        noses = np.array([s.label.nose for s in chosen])
        return fit_calibration([s.reading for s in chosen], noses, landmarks, strength, fitted_on, points)

    order = np.random.default_rng(seed).permutation(len(samples))
    after: list[FaceOutcome] = []
    numbers = []
    for held_out in np.array_split(order, folds):
        left_out = set(held_out.tolist())
        calibration = fit([s for i, s in enumerate(samples) if i not in left_out])
        numbers.append(calibration.numbers)
        after += [outcome(samples[i], calibration) for i in held_out]
    own_point = NoseCalibration(landmarks=landmarks, weights=(0.0,) * len(landmarks), points=points)
    before = [outcome(s, own_point) for s in samples]
    return CrossValidation(figures(before), figures(after), np.array(numbers), fit(samples))
