"""The wire answer: a `Prediction` as the JSON every prediction route sends, and back again for clients.

The seed's clients read `x` and `y` (the main face's nose, normalized 0..1) at the top level; everything else
sits beside them. This is the one place that shape is written and read.
"""

from __future__ import annotations

from typing import Any

from .models.base import Box, Face, Prediction
from .tracking.tracker import TrackedFrame

NO_FACE: dict[str, Any] = {"x": None, "y": None, "nose": None, "score": None, "box": None}


def face_answer(face: Face, width: int, height: int) -> dict[str, Any]:
    """One face: its nose normalized (the seed's `x`, `y`) and in pixels, its score and box; and, from a model
    that says, which point the nose is (`nose_source`: "dlib68", or "facemesh" where dlib68 fell back)."""
    answer = {
        "x": face.nose_x / width,
        "y": face.nose_y / height,
        "nose": {"x": face.nose_x, "y": face.nose_y},
        "score": face.score,
        "box": face.box.as_dict() if face.box else None,
    }
    if face.nose_source is not None:
        answer["nose_source"] = face.nose_source
    return answer


def prediction_answer(prediction: Prediction) -> dict[str, Any]:
    """The answer's body: the main face's fields at the top level, every face in `faces`."""
    faces = [face_answer(face, prediction.width, prediction.height) for face in prediction.faces]
    return {
        **(faces[0] if faces else NO_FACE),
        "detected": prediction.detected,
        "faces": faces,
        "image": {"width": prediction.width, "height": prediction.height},
    }


def tracked_answer(frame: TrackedFrame) -> dict[str, Any]:
    """A video frame's answer: `prediction_answer` of the smoothed faces (so `x`, `y` and `nose` are
    smoothed), the frame's `timestamp` and whether it starts a new shot (`scene_cut`: every id before it has
    ended), and per face its `id`, the id's `age` in seconds, `tracked`, and this frame's own `nose_raw`."""
    answer = prediction_answer(frame.prediction)
    for face, tracked in zip(answer["faces"], frame.faces, strict=True):
        face.update(
            id=tracked.id,
            age=tracked.age,
            tracked=tracked.tracked,
            nose_raw={"x": tracked.raw.nose_x, "y": tracked.raw.nose_y},
        )
    return {**answer, "timestamp": frame.timestamp, "scene_cut": frame.scene_cut}


def prediction_from_answer(answer: dict[str, Any]) -> Prediction:
    """The prediction back from an answer's body, as a client receives it."""
    faces = [
        Face(
            face["nose"]["x"],
            face["nose"]["y"],
            face.get("score"),
            Box(**face["box"]) if face.get("box") else None,
            face.get("nose_source"),
        )
        for face in answer["faces"]
    ]
    return Prediction(answer["image"]["width"], answer["image"]["height"], faces)
