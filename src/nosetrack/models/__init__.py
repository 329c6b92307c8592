"""Model families behind one interface, and `load_model` to pick one by name or path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import cv2

from .base import Box, Face, Model, ModelInfo, Prediction
from .blazeface import SHORT_RANGE, DetectorViews
from .calibration import NoseCalibration
from .face_mesh_reading import MESH_NOSE_TIP
from .nose_tracker import NoseTracker, NoseTrackerOptions
from .spec import ModelSpecError
from .spec_model import load_spec_model

DEFAULT_MODEL = "facemesh"
DLIB68 = "dlib68"
# The smallest face the photo models look for, as an inter-ocular distance in the image's pixels.
DEFAULT_MIN_FACE = 40.0
# Photos larger than a webcam frame are also searched in tiles, down to faces of DEFAULT_MIN_FACE.
PHOTO_VIEWS = DetectorViews(min_face=DEFAULT_MIN_FACE)
BUILTIN_MODELS: dict[str, tuple[str, NoseTrackerOptions]] = {
    "facemesh": (
        "BlazeFace full range (faces near and far, tiles down to --min-face for group photos, faces at any "
        "angle) + FaceMesh nose tip, averaged with the mirrored crop's. The default.",
        NoseTrackerOptions(views=PHOTO_VIEWS),
    ),
    "facemesh-steady": (
        "As facemesh, and every face gets a second FaceMesh pass on a crop centred by the first mesh: a "
        "third of the jitter on video, about one FaceMesh run (~3 ms) per face slower.",
        NoseTrackerOptions(views=PHOTO_VIEWS, refinements=1, refine_above=(0.0, 0.0)),
    ),
    "facemesh-short-range": (
        "BlazeFace short range (one face close to a webcam, upright, no tiles unless --min-face) + FaceMesh "
        "nose tip. A little faster.",
        NoseTrackerOptions(detector=SHORT_RANGE, quarter_turns=False),
    ),
    # Opt-in, never the default: its weights' licence excludes commercial use (models/dlib68.py).
    DLIB68: (
        "The faces facemesh finds, the nose from dlib's 68-point shape predictor (point 30, where 300-W's "
        "annotators put the tip): closer to human annotations. Needs pip install 'nosetrack[dlib]'. "
        "NOT FOR COMMERCIAL USE: trained on iBUG 300-W, whose licence excludes it.",
        # The mesh only places the predictor's box: second FaceMesh passes change no figure, and cost.
        NoseTrackerOptions(views=PHOTO_VIEWS, refinements=0),
    ),
}


def load_model(
    name_or_path: str | None = None,
    engine_threads: int = 1,
    calibration: str | Path | NoseCalibration | None = None,
    min_face: float | None = None,
) -> Model:
    """The built-in model called `name_or_path` (the default when None), or a user's model from a path:
    a spec (.toml), a model file with a spec beside it, or a bare TensorFlow .pb (the seed's preprocessing).

    `engine_threads` is how many threads one prediction may use, in the engines and in OpenCV (whose pool is
    one per process, so this sets it for the process). Parallelism comes from more instances and processes:
    OpenCV's own pool (resize, warpAffine, imdecode) would run on the same cores and cost more CPU per image
    than it saves. The instance is not thread-safe: give each thread its own, or share a `ModelPool`.

    For the built-in models: `calibration` (a file `nosetrack calibrate` wrote, or its contents) moves the
    nose from FaceMesh's own tip to where the user's annotators put it; `min_face` is the smallest face to
    find, as an inter-ocular distance in pixels (default: the model's own, 40 for the photo models).
    """
    cv2.setNumThreads(engine_threads)
    name = name_or_path or DEFAULT_MODEL
    if name in BUILTIN_MODELS:
        options = BUILTIN_MODELS[name][1]
        if min_face is not None:
            options = replace(options, views=replace(options.views, min_face=min_face))
        if name == DLIB68:
            return load_dlib68(options, engine_threads, calibration)
        if isinstance(calibration, (str, Path)):
            calibration = NoseCalibration.load(calibration)
        if calibration is not None and calibration.points != "facemesh":
            raise ModelSpecError(
                f"{calibration.source or 'This calibration'} was fitted on dlib68's points: use it with "
                "--model dlib68, or fit one for FaceMesh with nosetrack calibrate DATA_DIR."
            )
        return NoseTracker(options, engine_threads, name, calibration or MESH_NOSE_TIP)
    if calibration is not None or min_face is not None:
        raise ModelSpecError(
            "--calibration and --min-face apply to the built-in FaceMesh models, not to a user's model."
        )
    if Path(name).suffix:
        return load_spec_model(name, engine_threads)
    choices = ", ".join(BUILTIN_MODELS)
    raise ModelSpecError(
        f"Unknown model {name!r}: name a built-in model ({choices}) or a model file or spec."
    )


def load_dlib68(
    options: NoseTrackerOptions, engine_threads: int, calibration: str | Path | NoseCalibration | None
) -> Model:
    """The opt-in dlib68 model; ModelSpecError with the pip command when the dlib extra is missing."""
    from .dlib68 import Dlib68Model

    if isinstance(calibration, (str, Path)):
        calibration = NoseCalibration.load(calibration)
    return Dlib68Model(options, engine_threads, calibration=calibration)


def load_served_model(
    source: str, calibration: str | None = None, min_face: float | None = None, engine_threads: int = 1
) -> Model:
    """One of the models a server serves: `calibration` and `min_face` (the server's --calibration and
    --min-face) go to the built-in models among them (a calibration fitted on another model's landmarks
    is refused); a user's model keeps its own nose."""
    if source in BUILTIN_MODELS:
        return load_model(source, engine_threads, calibration, min_face)
    return load_model(source, engine_threads)


def model_sources(requested: Sequence[str] = ()) -> list[str]:
    """One entry for each model that `--model` values name: built-in names and files as given, and a folder
    as the specs (*.toml) in it, in name order. None requested: the default model."""
    sources: list[str] = []
    for item in requested or (DEFAULT_MODEL,):
        if Path(item).is_dir():
            specs = sorted(str(spec) for spec in Path(item).glob("*.toml"))
            if not specs:
                raise ModelSpecError(f"The folder {item} holds no model specs (*.toml).")
            sources += specs
        else:
            sources.append(item)
    return sources


def check_unique_names(infos: Iterable[ModelInfo]) -> None:
    """Refuse two models with one name: a client names the model it wants, so each name must mean one."""
    seen: set[str] = set()
    for info in infos:
        if info.name in seen:
            raise ModelSpecError(
                f"Two of the models are called {info.name!r}: name each model once, and give a user model "
                'a name of its own (name = "..." under [model] in its spec).'
            )
        seen.add(info.name)


__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "DLIB68",
    "Box",
    "Face",
    "Model",
    "ModelInfo",
    "ModelSpecError",
    "Prediction",
    "check_unique_names",
    "load_model",
    "load_served_model",
    "model_sources",
]
