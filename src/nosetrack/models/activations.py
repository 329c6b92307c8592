"""Activation functions the models apply to their networks' raw outputs."""

from __future__ import annotations

import numpy as np


def sigmoid(logits: np.ndarray | float) -> np.ndarray:
    """1 / (1 + e^-x), with x clipped so that a large negative logit cannot overflow the exponential."""
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
