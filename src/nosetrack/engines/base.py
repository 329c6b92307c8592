"""The one interface every engine offers: a network file in, arrays through it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """Name and shape of one input or output; -1 marks a dimension the file leaves open."""

    name: str
    shape: tuple[int, ...]


class Engine(Protocol):
    """Runs one network. An engine holds mutable buffers, so one instance serves one thread at a time."""

    kind: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Feed the inputs in the file's order and return every output in the file's order."""
        ...
