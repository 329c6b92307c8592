"""Models under OpenCV's DNN module: the seed's engine, and the one that reads TensorFlow frozen graphs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .base import TensorInfo


class OpenCVEngine:
    kind = "opencv"

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        # `threads` is not the net's own: OpenCV DNN runs on OpenCV's process-wide pool (load_model sizes it).
        path = Path(path)
        if path.suffix == ".pb":
            self._net = cv2.dnn.readNetFromTensorflow(str(path))
        else:
            self._net = cv2.dnn.readNet(str(path))
        # OpenCV does not report input shapes before a first forward pass; the model spec supplies them.
        self.inputs = [TensorInfo("input", (-1,))]
        self._output_names = list(self._net.getUnconnectedOutLayersNames())
        self.outputs = [TensorInfo(name, (-1,)) for name in self._output_names]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        (array,) = inputs
        self._net.setInput(array)
        return list(self._net.forward(self._output_names))
