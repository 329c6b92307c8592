"""A user's own model, served as its spec declares: preprocess, run on its engine, read the nose."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..engines import open_engine
from .activations import sigmoid
from .base import Face, ImageInput, ModelInfo, Prediction, bgr_pixels
from .geometry import ViewFrame, letterbox
from .spec import ModelSpec, ModelSpecError, spec_for

_COLOR_CONVERSIONS = {"RGB": cv2.COLOR_BGR2RGB, "GRAY": cv2.COLOR_BGR2GRAY}


class SpecModel:
    """One instance per thread, like every model; checked against its spec when it loads."""

    def __init__(self, spec: ModelSpec, engine_threads: int = 1) -> None:
        self.spec = spec
        if not spec.file.is_file():
            where = f" (named in {spec.source})" if spec.source else ""
            raise ModelSpecError(f"The model file {spec.file} does not exist{where}.")
        try:
            self._engine = open_engine(spec.file, spec.engine, engine_threads)
        except Exception as error:
            raise ModelSpecError(
                f"{spec.engine_kind} cannot load {spec.file.name}: {_first_line(error)}"
            ) from None
        self._mean = np.array(spec.input.mean, dtype=np.float32)
        self._std = np.array(spec.input.std, dtype=np.float32)
        self.info = ModelInfo(
            name=spec.name,
            version=spec.version,
            description=f"user model {spec.file.name} on {spec.engine_kind}",
            details=spec.as_dict(),
        )
        self._check_against_engine()

    def _check_against_engine(self) -> None:
        """Fail at start-up, not at the first request, when the file and the spec disagree."""
        expected = self.spec.input.tensor_shape
        declared = self._engine.inputs[0].shape
        if len(self._engine.inputs) != 1:
            raise ModelSpecError(
                f"{self.spec.file.name} has {len(self._engine.inputs)} inputs; nosetrack feeds one image."
            )
        if -1 not in declared and declared != expected:
            raise ModelSpecError(
                f"{self.spec.file.name} takes input of shape {declared}, but its spec gives {expected} "
                f"({self.spec.input.layout}, {self.spec.input.width}x{self.spec.input.height}, "
                f"{self.spec.input.color})."
            )
        try:
            outputs = self._engine.run(np.zeros(expected, dtype=np.float32))
        except Exception as error:
            raise ModelSpecError(
                f"{self.spec.file.name} fails on an input of shape {expected}: {_first_line(error)}"
            ) from None
        self._read_nose(outputs)

    def _tensor(self, image: np.ndarray) -> tuple[np.ndarray, ViewFrame | None]:
        spec = self.spec.input
        frame = None
        if spec.resize == "letterbox":
            resized, frame = letterbox(image, spec.width, spec.height)
        else:
            resized = cv2.resize(image, (spec.width, spec.height))
        if spec.color in _COLOR_CONVERSIONS:
            resized = cv2.cvtColor(resized, _COLOR_CONVERSIONS[spec.color])
        tensor = resized.reshape(spec.height, spec.width, spec.channels).astype(np.float32)
        tensor = (tensor * spec.scale - self._mean) / self._std
        if spec.layout == "NCHW":
            tensor = tensor.transpose(2, 0, 1)
        return np.ascontiguousarray(tensor[np.newaxis]), frame

    def _read_nose(self, outputs: list[np.ndarray]) -> tuple[float, float, float | None]:
        """The nose (x, y) in 0..1 of the input, and the score when the spec names one."""
        spec = self.spec.output
        name = self.spec.file.name
        if spec.tensor >= len(outputs):
            raise ModelSpecError(f"{name} has {len(outputs)} outputs; its spec reads output {spec.tensor}.")
        values = np.asarray(outputs[spec.tensor], dtype=np.float32).reshape(-1)
        if spec.kind == "keypoints":
            if values.size % spec.values_per_keypoint or values.size // spec.values_per_keypoint <= spec.nose:
                raise ModelSpecError(
                    f"{name}'s output {spec.tensor} holds {values.size} values: not enough for keypoint "
                    f"{spec.nose} at {spec.values_per_keypoint} values per keypoint."
                )
            x, y = values.reshape(-1, spec.values_per_keypoint)[spec.nose, :2]
        else:
            if values.size != 2:
                raise ModelSpecError(
                    f'{name}\'s output {spec.tensor} holds {values.size} values; kind = "xy" needs exactly 2 '
                    f'(use kind = "keypoints" with nose = N for more).'
                )
            x, y = values
        if spec.units == "pixels":
            x, y = x / self.spec.input.width, y / self.spec.input.height
        score = None
        if spec.score_tensor is not None:
            if spec.score_tensor >= len(outputs):
                raise ModelSpecError(
                    f"{name} has {len(outputs)} outputs; "
                    f"its spec reads the score from output {spec.score_tensor}."
                )
            score = float(np.asarray(outputs[spec.score_tensor]).reshape(-1)[0])
            if spec.score_activation == "sigmoid":
                score = float(sigmoid(score))
        return float(x), float(y), score

    def predict(self, image: ImageInput) -> Prediction:
        image = bgr_pixels(image)
        height, width = image.shape[:2]
        tensor, frame = self._tensor(image)
        x, y, score = self._read_nose(self._engine.run(tensor))
        if score is not None and score < self.spec.output.min_score:
            return Prediction(width, height, [])
        if frame is not None:
            nose_x, nose_y = frame.to_image(np.array([x, y], dtype=np.float32))
        else:
            nose_x, nose_y = x * width, y * height
        return Prediction(width, height, [Face(float(nose_x), float(nose_y), score=score)])


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


def load_spec_model(path: str | Path, engine_threads: int = 1) -> SpecModel:
    return SpecModel(spec_for(Path(path)), engine_threads)
