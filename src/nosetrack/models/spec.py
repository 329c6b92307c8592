"""A user model's spec: which file, which engine, how to prepare the image, how to read the nose.

A spec is a small TOML file beside the model; a bare TensorFlow `.pb` gets the seed's preprocessing.

    [model]
    file = "nose.onnx"            # relative to this spec
    engine = "onnxruntime"        # litert | onnxruntime | opencv; from the file type when absent

    [input]
    size = [112, 112]             # width, height
    layout = "NCHW"               # or NHWC
    color = "BGR"                 # or RGB, GRAY
    scale = 0.00392156862745098   # value = (pixel * scale - mean) / std
    mean = [0.0, 0.0, 0.0]
    std = [1.0, 1.0, 1.0]
    resize = "stretch"            # or letterbox (keeps the aspect ratio, pads with black)

    [output]
    kind = "xy"                   # an (x, y) pair, or "keypoints"
    units = "normalized"          # 0..1 of the input, or "pixels" of the input
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engines import ENGINE_BY_SUFFIX, ENGINE_KINDS

SPEC_SUFFIX = ".toml"
EXAMPLE_SPEC = """[model]
file = "nose.onnx"
[input]
size = [112, 112]
layout = "NCHW"
color = "BGR"
scale = 0.00392156862745098
[output]
kind = "xy"
units = "normalized\""""


class ModelSpecError(ValueError):
    """A spec or model file that cannot serve; the message says what to change."""


@dataclass(frozen=True)
class InputSpec:
    width: int
    height: int
    layout: str = "NCHW"
    color: str = "BGR"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    resize: str = "stretch"

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3

    @property
    def tensor_shape(self) -> tuple[int, ...]:
        if self.layout == "NCHW":
            return (1, self.channels, self.height, self.width)
        return (1, self.height, self.width, self.channels)


@dataclass(frozen=True)
class OutputSpec:
    kind: str = "xy"
    units: str = "normalized"
    tensor: int = 0
    values_per_keypoint: int = 2
    nose: int = 0
    score_tensor: int | None = None
    score_activation: str = "none"
    min_score: float = 0.5


@dataclass(frozen=True)
class ModelSpec:
    file: Path
    input: InputSpec
    output: OutputSpec = field(default_factory=OutputSpec)
    engine: str | None = None
    name: str = ""
    version: str = "1"
    source: Path | None = None  # the spec file, when there is one

    @property
    def engine_kind(self) -> str:
        return self.engine or ENGINE_BY_SUFFIX.get(self.file.suffix.lower(), "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "spec": str(self.source) if self.source else "seed defaults for a TensorFlow .pb",
            "engine": self.engine_kind,
            "input": dataclasses.asdict(self.input),
            "output": dataclasses.asdict(self.output),
        }


def seed_spec(pb_file: Path) -> ModelSpec:
    """The seed's nose tracker: BGR, stretched to 112x112, divided by 255, NCHW; out: x, y in 0..1."""
    return ModelSpec(pb_file, InputSpec(112, 112), engine="opencv", name=pb_file.stem)


_CHOICES = {
    ("input", "layout"): ("NCHW", "NHWC"),
    ("input", "color"): ("BGR", "RGB", "GRAY"),
    ("input", "resize"): ("stretch", "letterbox"),
    ("output", "kind"): ("xy", "keypoints"),
    ("output", "units"): ("normalized", "pixels"),
    ("output", "score_activation"): ("none", "sigmoid"),
    ("model", "engine"): ENGINE_KINDS,
}


def _section(document: dict, name: str, known: set[str], where: Path) -> dict[str, Any]:
    section = document.get(name, {})
    if not isinstance(section, dict):
        raise ModelSpecError(f"{where}: [{name}] must be a table.")
    unknown = sorted(set(section) - known)
    if unknown:
        raise ModelSpecError(
            f"{where}: unknown key {unknown[0]!r} in [{name}]; known keys: {', '.join(sorted(known))}."
        )
    for key, value in section.items():
        choices = _CHOICES.get((name, key))
        if choices and value not in choices:
            raise ModelSpecError(f"{where}: [{name}] {key} = {value!r}; use one of {', '.join(choices)}.")
    return section


def _typed(section: dict, key: str, kind: type, where: Path, name: str) -> Any:
    value = section[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ModelSpecError(f"{where}: [{name}] {key} must be a {kind.__name__}, not {value!r}.")
    return value


def _numbers(value: Any, count: int, key: str, where: Path) -> tuple[float, ...]:
    if (
        not isinstance(value, list)
        or len(value) != count
        or not all(isinstance(v, int | float) for v in value)
    ):
        raise ModelSpecError(f"{where}: [input] {key} must be a list of {count} numbers, not {value!r}.")
    return tuple(float(v) for v in value)


def _input_spec(section: dict, where: Path) -> InputSpec:
    if "size" not in section:
        raise ModelSpecError(f"{where}: [input] needs size = [width, height].")
    width, height = _numbers(section["size"], 2, "size", where)
    if width < 1 or height < 1 or width != int(width) or height != int(height):
        raise ModelSpecError(f"{where}: [input] size must be two positive whole numbers.")
    values: dict[str, Any] = {"width": int(width), "height": int(height)}
    for key in ("layout", "color", "resize"):
        if key in section:
            values[key] = section[key]
    if "scale" in section:
        values["scale"] = _typed(section, "scale", float, where, "input")
    channels = 1 if section.get("color") == "GRAY" else 3
    for key in ("mean", "std"):
        if key in section:
            values[key] = _numbers(section[key], channels, key, where)
    if any(s == 0 for s in values.get("std", ())):
        raise ModelSpecError(f"{where}: [input] std must not hold a zero.")
    return InputSpec(**values)


def _output_spec(section: dict, where: Path) -> OutputSpec:
    values: dict[str, Any] = {k: section[k] for k in ("kind", "units", "score_activation") if k in section}
    for key in ("tensor", "values_per_keypoint", "nose", "score_tensor"):
        if key in section:
            values[key] = _typed(section, key, int, where, "output")
            if values[key] < 0:
                raise ModelSpecError(f"{where}: [output] {key} must not be negative.")
    if "min_score" in section:
        values["min_score"] = _typed(section, "min_score", float, where, "output")
    if values.get("values_per_keypoint", 2) < 2:
        raise ModelSpecError(f"{where}: [output] values_per_keypoint must be at least 2 (x, y).")
    return OutputSpec(**values)


def read_spec(path: Path) -> ModelSpec:
    """Parse and check a TOML spec; every problem is one ModelSpecError sentence naming the file."""
    try:
        document = tomllib.loads(path.read_text())
    except OSError as error:
        raise ModelSpecError(f"Cannot read the spec {path}: {error.strerror}.") from None
    except tomllib.TOMLDecodeError as error:
        raise ModelSpecError(f"{path} is not valid TOML: {error}.") from None
    unknown = sorted(set(document) - {"model", "input", "output"})
    if unknown:
        raise ModelSpecError(
            f"{path}: unknown section [{unknown[0]}]; a spec has [model], [input], [output]."
        )
    model = _section(document, "model", {"file", "engine", "name", "version"}, path)
    if "file" not in model:
        raise ModelSpecError(f'{path}: [model] needs file = "your_model.onnx" (relative to the spec).')
    input_section = _section(
        document, "input", {"size", "layout", "color", "scale", "mean", "std", "resize"}, path
    )
    output_section = _section(
        document,
        "output",
        {
            "kind",
            "units",
            "tensor",
            "values_per_keypoint",
            "nose",
            "score_tensor",
            "score_activation",
            "min_score",
        },
        path,
    )
    file = (path.parent / _typed(model, "file", str, path, "model")).resolve()
    return ModelSpec(
        file=file,
        input=_input_spec(input_section, path),
        output=_output_spec(output_section, path),
        engine=model.get("engine"),
        name=str(model.get("name", file.stem)),
        version=str(model.get("version", "1")),
        source=path,
    )


def spec_for(path: Path) -> ModelSpec:
    """A model path's spec: the .toml itself, a spec beside the model file, or the seed's for a bare .pb."""
    if path.suffix.lower() == SPEC_SUFFIX:
        return read_spec(path)
    beside = path.with_suffix(SPEC_SUFFIX)
    if beside.exists():
        return read_spec(beside)
    if not path.exists():
        raise ModelSpecError(f"The model file {path} does not exist.")
    if path.suffix.lower() == ".pb":
        return seed_spec(path.resolve())
    raise ModelSpecError(
        f"{path} needs a spec: write {beside.name} beside it (or pass a .toml), for example:\n{EXAMPLE_SPEC}"
    )
