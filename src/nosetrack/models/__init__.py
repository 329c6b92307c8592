"""Model families behind one interface, and `load_model` to pick one by name or path."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import cv2

from .base import Box, Face, Model, ModelInfo, Prediction
from .blazeface import SHORT_RANGE, DetectorViews
from .nose_tracker import NoseTracker, NoseTrackerOptions
from .spec import ModelSpecError
from .spec_model import load_spec_model

DEFAULT_MODEL = "facemesh"
# Photos larger than a webcam frame are also searched in tiles, for the small faces of group photos.
PHOTO_VIEWS = DetectorViews(tile_above=640)
BUILTIN_MODELS: dict[str, tuple[str, Callable[[int], Model]]] = {
    "facemesh": (
        "BlazeFace full range (faces near and far, tiles for group photos) + FaceMesh nose tip, "
        "averaged with the mirrored crop's. The default.",
        lambda engine_threads: NoseTracker(NoseTrackerOptions(views=PHOTO_VIEWS), engine_threads, "facemesh"),
    ),
    "facemesh-steady": (
        "As facemesh, and every face gets a second FaceMesh pass on a crop centred by the first mesh: a "
        "third of the jitter on video, about one FaceMesh run (~3 ms) per face slower.",
        lambda engine_threads: NoseTracker(
            NoseTrackerOptions(views=PHOTO_VIEWS, refinements=1, refine_above=(0.0, 0.0)),
            engine_threads,
            "facemesh-steady",
        ),
    ),
    "facemesh-short-range": (
        "BlazeFace short range (one face close to a webcam) + FaceMesh nose tip. A little faster.",
        lambda engine_threads: NoseTracker(
            NoseTrackerOptions(detector=SHORT_RANGE), engine_threads, "facemesh-short-range"
        ),
    ),
}


def load_model(name_or_path: str | None = None, engine_threads: int = 1) -> Model:
    """The built-in model called `name_or_path` (the default when None), or a user's model from a path:
    a spec (.toml), a model file with a spec beside it, or a bare TensorFlow .pb (the seed's preprocessing).

    `engine_threads` is how many threads one prediction may use, in the engines and in OpenCV (whose pool is
    one per process, so this sets it for the process). Parallelism comes from more instances and processes:
    OpenCV's own pool (resize, warpAffine, imdecode) would run on the same cores and cost more CPU per image
    than it saves. The instance is not thread-safe: give each thread its own, or share a `ModelPool`.
    """
    cv2.setNumThreads(engine_threads)
    name = name_or_path or DEFAULT_MODEL
    if name in BUILTIN_MODELS:
        return BUILTIN_MODELS[name][1](engine_threads)
    if Path(name).suffix:
        return load_spec_model(name, engine_threads)
    choices = ", ".join(BUILTIN_MODELS)
    raise ModelSpecError(
        f"Unknown model {name!r}: name a built-in model ({choices}) or a model file or spec."
    )


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
    "Box",
    "Face",
    "Model",
    "ModelInfo",
    "ModelSpecError",
    "Prediction",
    "check_unique_names",
    "load_model",
    "model_sources",
]
