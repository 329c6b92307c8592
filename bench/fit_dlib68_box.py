"""Fit dlib68's box map: from a face's FaceMesh landmarks to the box dlib's HOG detector gives it.

    python -m bench.fit_dlib68_box [--data ../shared/data] [--folds 5] [--write]

dlib's 68-point predictor was trained from HOG's boxes, so it is most accurate started from such a box. On
every photo of the set (labelled, group and no-face photos alike) this runs the dlib68 model's own face
finder (nosetrack's detector and one FaceMesh pass) and dlib's HOG detector, pairs each mesh with the HOG box
around its nose, and fits `nosetrack.models.dlib68.BoxMap` by least squares. No nose label is used: the
annotations stay unseen by the fit. It is checked by k-fold cross-validation (each face's box predicted by a
fit that did not see it): the box's error, and the nose error on the labelled faces when the predictor starts
from the predicted box, against starting from HOG's own box. `--write` writes the fit on every face to
src/nosetrack/models/dlib68_box.toml (the file the model reads) and the figures to
bench/results/dlib68_box_fit.json.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench import stamp
from nosetrack.evaluation import ANNOTATED_SET, IMAGE_SUFFIXES, match_faces, read_labels
from nosetrack.images import read_image
from nosetrack.models import BUILTIN_MODELS
from nosetrack.models.base import Prediction
from nosetrack.models.dlib68 import BOX_MAP_FILE, NOSE_POINT, BoxMap, ShapePredictor, import_dlib, mesh_frame
from nosetrack.models.facemesh import NOSE_TIP
from nosetrack.models.geometry import RotatedCrop
from nosetrack.models.nose_tracker import NoseTracker

# HOG looks at each face on a window of this many mesh sizes around it, scaled so that the mesh is this many
# pixels: HOG's boxes scale with the face, and a 12-megapixel photo would take seconds per face.
WINDOW_MESHES = 3.0
MESH_PIXELS = 160.0


@dataclass
class Pair:
    file: str
    points: np.ndarray  # the mesh, image pixels
    roll: float
    hog: RotatedCrop  # HOG's box as a level square
    target: np.ndarray  # centre x, centre y, log side in the mesh's upright frame


def hog_boxes(detector, image: np.ndarray, centre: np.ndarray, size: float) -> list[RotatedCrop]:
    """HOG's boxes on a window around a face (`centre`, mesh `size`), in image pixels."""
    scale = MESH_PIXELS / size
    half = WINDOW_MESHES * size / 2.0
    window = RotatedCrop(float(centre[0]), float(centre[1]), 2.0 * half, 0.0)
    pixels = round(2.0 * half * scale)
    patch = window.cut(image, pixels)
    boxes = []
    for rect in detector(np.ascontiguousarray(patch[:, :, ::-1]), 0):
        middle = np.array([(rect.left() + rect.right()) / 2.0, (rect.top() + rect.bottom()) / 2.0])
        (x, y), side = window.to_image(middle, pixels), (rect.right() - rect.left() + 1) / scale
        boxes.append(RotatedCrop(float(x), float(y), float(side), 0.0))
    return boxes


def target_of(points: np.ndarray, roll: float, box: RotatedCrop) -> np.ndarray:
    rotation, centre, size, _ = mesh_frame(points, roll)
    middle = (np.array([box.centre_x, box.centre_y]) @ rotation - centre) / size
    return np.array([middle[0], middle[1], np.log(box.size / size)])


def collect(data: Path, finder: NoseTracker) -> tuple[list[Pair], dict[str, list], int]:
    """Mesh/HOG pairs from every photo, every photo's meshes, and how many meshes had no HOG box."""
    detector = import_dlib().get_frontal_face_detector()
    labelled = sorted(read_labels(data))
    paths = [data / "images" / name for name in labelled]
    for folder in ("multi_face", "no_face"):
        if (data / folder).is_dir():
            paths += sorted(p for p in (data / folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    pairs, meshes, unpaired = [], {}, 0
    for path in paths:
        image = read_image(path)
        read = finder.read_faces(image)
        name = path.name if path.parent.name == "images" else f"{path.parent.name}/{path.name}"
        meshes[name] = read
        boxes_seen = 0
        for item in read:
            points, roll = item.reading.points, item.reading.roll()
            rotation, centre, size, _ = mesh_frame(points, roll)
            nose = points[NOSE_TIP]
            boxes = hog_boxes(detector, image, centre @ rotation.T, size)
            boxes_seen += len(boxes)
            around = [
                box
                for box in boxes
                if abs(nose[0] - box.centre_x) < box.size / 2
                and abs(nose[1] - box.centre_y) < box.size / 2
                and 0.5 < box.size / size < 2.0
            ]
            if not around:
                unpaired += 1
                continue
            box = min(around, key=lambda b: np.hypot(b.centre_x - nose[0], b.centre_y - nose[1]))
            pairs.append(Pair(name, points, roll, box, target_of(points, roll, box)))
        print(f"{name}: {len(read)} faces, {boxes_seen} HOG boxes", flush=True)
    return pairs, meshes, unpaired


def fit(pairs: list[Pair], columns: list[int]) -> np.ndarray:
    features = np.array([mesh_frame(p.points, p.roll)[3][columns] for p in pairs])
    weights = np.linalg.lstsq(features, np.array([p.target for p in pairs]), rcond=None)[0]
    full = np.zeros((4, 3))
    full[columns] = weights
    return full


def folds_by_photo(pairs: list[Pair], folds: int, seed: int = 0) -> list[int]:
    """A fold per photo (faces of one photo stay together), at random."""
    files = sorted({p.file for p in pairs})
    order = np.random.default_rng(seed).permutation(len(files))
    fold_of = {files[i]: k % folds for k, i in enumerate(order)}
    return [fold_of[p.file] for p in pairs]


def figures(errors: list[float]) -> dict[str, float]:
    values = np.array(errors)
    return {
        "faces": int(values.size),
        "median": float(np.median(values)),
        "p90": float(np.percentile(values, 90)),
        "share_under_5_percent": float((values < 0.05).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ANNOTATED_SET)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write dlib68_box.toml and the figures")
    args = parser.parse_args()
    machine = stamp.machine()
    options = replace(BUILTIN_MODELS["dlib68"][1], mirror=False)
    finder = NoseTracker(options, name="dlib68")
    predictor = ShapePredictor()
    pairs, meshes, unpaired = collect(args.data, finder)
    fold_of = folds_by_photo(pairs, args.folds)
    labels = read_labels(args.data)
    report: dict = {"pairs": len(pairs), "meshes_without_hog_box": unpaired, "folds": args.folds}
    variants = {"constant": [0], "pose": [0, 1, 2, 3]}
    for variant, columns in variants.items():
        residuals = np.zeros((len(pairs), 3))
        fold_maps = []
        for fold in range(args.folds):
            weights = fit([p for p, f in zip(pairs, fold_of, strict=True) if f != fold], columns)
            fold_maps.append(weights)
            for i, (pair, f) in enumerate(zip(pairs, fold_of, strict=True)):
                if f == fold:
                    features = mesh_frame(pair.points, pair.roll)[3]
                    residuals[i] = features @ weights - pair.target
        report[variant] = {
            "cv_rms_residual": dict(
                zip(
                    ["centre_x", "centre_y", "log_side"],
                    np.sqrt((residuals**2).mean(0)).tolist(),
                    strict=True,
                )
            ),
        }
        # Nose error on the labelled faces, each from a map fitted without its photo.
        fold_of_file = {p.file: f for p, f in zip(pairs, fold_of, strict=True)}
        errors, hog_errors = [], []
        for name, faces in labels.items():
            read = meshes[name]
            prediction = Prediction(0, 0, [item.face for item in read])
            at = {(item.face.nose_x, item.face.nose_y): item for item in read}
            fold = fold_of_file.get(name, hash(name) % args.folds)
            box_map = BoxMap(fold_maps[fold])
            image = read_image(args.data / "images" / name)
            for outcome in match_faces(faces, prediction):
                if not outcome.found or outcome.label.interocular is None:
                    continue
                item = at[outcome.predicted]
                nose = predictor.points(image, box_map.box(item.reading.points, item.reading.roll()))[
                    NOSE_POINT
                ]
                errors.append(np.hypot(*(nose - outcome.label.nose)) / outcome.label.interocular)
                hog = [p for p in pairs if p.file == name and p.points is item.reading.points]
                if hog:
                    hog_nose = predictor.points(image, hog[0].hog)[NOSE_POINT]
                    hog_errors.append(np.hypot(*(hog_nose - outcome.label.nose)) / outcome.label.interocular)
        report[variant]["nose_error_cv"] = figures(errors)
        report[variant]["nose_error_from_hog_boxes_where_hog_finds_the_face"] = figures(hog_errors)
        print(variant, json.dumps(report[variant], indent=1), flush=True)
    weights = fit(pairs, variants["pose"])
    report["weights"] = weights.tolist()
    report["stamp"] = stamp.describe(stamp.finish(machine))
    print(json.dumps(report, indent=1))
    if args.write:
        fitted_on = (
            f"{args.data.resolve().name}: {len(pairs)} faces with a HOG box, {args.folds}-fold checked"
        )
        rows = ",\n".join("    [" + ", ".join(f"{v:.6f}" for v in row) + "]" for row in weights)
        cv = report["pose"]["nose_error_cv"]
        BOX_MAP_FILE.write_text(
            "# dlib68's box map, written by `python -m bench.fit_dlib68_box --write`\n"
            "# (see nosetrack.models.dlib68.BoxMap).\n"
            "# Rows: the features 1, nose x, nose y (offsets from the mesh's centre), log(width / height);\n"
            "# columns: the HOG box's centre x, centre y (mesh-size units) and log(side / mesh size).\n"
            f"# Cross-validated nose error from these boxes: median {cv['median']:.2%}, "
            f"p90 {cv['p90']:.2%}.\n"
            "[box_map]\n"
            f'fitted_on = "{fitted_on}"\n'
            f"weights = [\n{rows},\n]\n"
        )
        out = Path(__file__).parent / "results" / "dlib68_box_fit.json"
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {BOX_MAP_FILE} and {out}")


if __name__ == "__main__":
    main()
