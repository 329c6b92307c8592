"""ONNX models under onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime

from .base import TensorInfo


def _shape(dimensions: list) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else -1 for d in dimensions)


class OnnxEngine:
    kind = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        options = onnxruntime.SessionOptions()
        # The server's workers and threads use the cores; one core per session avoids oversubscription.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [TensorInfo(i.name, _shape(i.shape)) for i in self._session.get_inputs()]
        self.outputs = [TensorInfo(o.name, _shape(o.shape)) for o in self._session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        feeds = {info.name: array for info, array in zip(self.inputs, inputs, strict=True)}
        return self._session.run(self._output_names, feeds)
