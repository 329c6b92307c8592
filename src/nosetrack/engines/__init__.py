"""Engines run a network file; models decide what goes in and what comes out."""

from __future__ import annotations

from pathlib import Path

from .base import Engine, TensorInfo

ENGINE_BY_SUFFIX = {".tflite": "litert", ".onnx": "onnxruntime", ".pb": "opencv"}
ENGINE_KINDS = ("litert", "onnxruntime", "opencv")


def open_engine(path: str | Path, kind: str | None = None, threads: int = 1) -> Engine:
    """Load `path` on the engine `kind`, or on the usual engine for its file type when `kind` is None."""
    path = Path(path)
    kind = kind or ENGINE_BY_SUFFIX.get(path.suffix.lower())
    if kind == "litert":
        from .litert import LiteRTEngine

        return LiteRTEngine(path, threads)
    if kind == "onnxruntime":
        from .onnx import OnnxEngine

        return OnnxEngine(path, threads)
    if kind == "opencv":
        from .opencv_dnn import OpenCVEngine

        return OpenCVEngine(path, threads)
    known = ", ".join(f"{suffix} ({engine})" for suffix, engine in ENGINE_BY_SUFFIX.items())
    raise ValueError(
        f"No engine for {path.name!r}: name one of {ENGINE_KINDS}, or use a file ending in {known}."
    )


__all__ = ["ENGINE_KINDS", "Engine", "TensorInfo", "open_engine"]
