"""TensorFlow Lite models under LiteRT (XNNPACK on CPU)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from .base import TensorInfo

_first_interpreter = threading.Lock()
_delegate_announced = False


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """LiteRT's C++ core prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on the process's
    stderr once per process, below the reach of Python's logging: while the first interpreter is made, the
    process's stderr (file descriptor 2) points at /dev/null."""
    global _delegate_announced
    with _first_interpreter:
        if _delegate_announced:
            yield
            return
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
            yield
            _delegate_announced = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class LiteRTEngine:
    kind = "litert"

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        with _native_stderr_silenced():
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
