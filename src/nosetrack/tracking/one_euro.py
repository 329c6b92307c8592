"""The One Euro filter (Casiez, Roussel, Vogel, CHI 2012): steady when still, quick when moving.

A first-order low-pass filter whose cutoff frequency rises with the signal's speed: at rest the cutoff is
`min_cutoff` (little jitter gets through), and every unit of speed adds `beta` Hz (little lag when moving).
It runs on timestamps, not frame counts, so dropped and irregular frames need no special care: a long gap
simply lets more of the new value through. MediaPipe smooths its landmarks with it.
"""

from __future__ import annotations

import math

import numpy as np


def smoothing_factor(cutoff: float, seconds: float) -> float:
    """How much of a new value a low-pass filter with this cutoff (Hz) takes after `seconds`."""
    time_constant = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + time_constant / seconds)


class OneEuroFilter:
    """Smooths a vector (a point, a box) sampled at increasing timestamps in seconds.

    The speed that opens the filter is the norm of the vector's smoothed rate of change, divided by the
    `scale` given with each value (MediaPipe's "value scale"): with a face's size as the scale, `beta` means
    the same for a small face far away and a large one close up.
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._value: np.ndarray | None = None
        self._rate: np.ndarray | None = None
        self._timestamp = 0.0

    def __call__(self, value: np.ndarray, timestamp: float, scale: float = 1.0) -> np.ndarray:
        """The smoothed value at `timestamp`; the first value passes through unchanged.

        A value at the same timestamp as the last one changes nothing (it is the same instant).
        """
        value = np.asarray(value, dtype=np.float64)
        if self._value is None or self._rate is None:
            self._value, self._rate, self._timestamp = value, np.zeros_like(value), timestamp
            return value
        seconds = timestamp - self._timestamp
        if seconds <= 0.0:
            return self._value
        rate = (value - self._value) / seconds
        self._rate = self._rate + smoothing_factor(self.d_cutoff, seconds) * (rate - self._rate)
        speed = float(np.linalg.norm(self._rate)) / scale
        cutoff = self.min_cutoff + self.beta * speed
        self._value = self._value + smoothing_factor(cutoff, seconds) * (value - self._value)
        self._timestamp = timestamp
        return self._value
