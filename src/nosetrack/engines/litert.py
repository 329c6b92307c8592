"""TensorFlow Lite models under LiteRT (XNNPACK on CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from .base import TensorInfo


class LiteRTEngine:
    kind = "litert"

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._interpreter.allocate_tensors()
        input_details = self._interpreter.get_input_details()
        output_details = self._interpreter.get_output_details()
        self._input_indices = [d["index"] for d in input_details]
        self._output_indices = [d["index"] for d in output_details]
        self.inputs = [TensorInfo(d["name"], tuple(int(n) for n in d["shape"])) for d in input_details]
        self.outputs = [TensorInfo(d["name"], tuple(int(n) for n in d["shape"])) for d in output_details]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        for index, array in zip(self._input_indices, inputs, strict=True):
            self._interpreter.set_tensor(index, array)
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(index) for index in self._output_indices]
