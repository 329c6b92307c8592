"""Requests per second and latency percentiles over the last minutes, summed over gunicorn's workers.

Prometheus' counters only know totals since start; a chart needs what happened in each second. Every worker
keeps a ring of per-second rows (the second, requests, errors, a latency histogram) in a memory-mapped file of
its own in the metrics directory, which only that worker writes; a reader sums the rows of every worker's file
that fall in the window. Without a metrics directory (one process, as in tests) the ring lives in memory.

Percentiles come from the histogram: buckets grow by 2**(1/4), so an estimate is within ~10% of the truth.
"""

from __future__ import annotations

import bisect
import mmap
import os
import threading
import time
from pathlib import Path

import numpy as np

SECONDS_KEPT = 300
# Bucket upper edges from 0.5 ms to ~33 s; one more bucket catches anything slower.
BUCKET_EDGES = 0.0005 * 2.0 ** (np.arange(65) / 4.0)
BUCKET_EDGE_LIST = BUCKET_EDGES.tolist()  # bisect on a list: numpy's searchsorted costs more for one value
SECOND, REQUESTS, ERRORS, FIRST_BUCKET = 0, 1, 2, 3
ROW_WIDTH = FIRST_BUCKET + len(BUCKET_EDGES) + 1
PERCENTILES = (50, 90, 99)


def _own_ring(path: Path | None) -> np.ndarray:
    if path is None:
        return np.zeros((SECONDS_KEPT, ROW_WIDTH), np.int64)
    # A restarted worker that got a dead one's pid continues its file; stale rows age out by their second.
    size = SECONDS_KEPT * ROW_WIDTH * 8
    with path.open("a+b") as file:
        file.truncate(size)
        shared = mmap.mmap(file.fileno(), size)
    # A plain array over the shared pages: np.memmap's per-index overhead would triple the cost of `record`.
    return np.frombuffer(shared, np.int64).reshape(SECONDS_KEPT, ROW_WIDTH)


def percentiles_ms(histograms: np.ndarray, percentile: float) -> list[float | None]:
    """Per row of bucket counts, the latency in ms below which `percentile`% of its requests fell (None if
    the row has none)."""
    totals = histograms.sum(axis=1)
    cumulative = histograms.cumsum(axis=1)
    ranks = totals * percentile / 100.0
    index = np.minimum((cumulative < ranks[:, None]).sum(axis=1), len(BUCKET_EDGES) - 1)
    rows = np.arange(len(histograms))
    upper = BUCKET_EDGES[index]
    lower = np.where(index > 0, BUCKET_EDGES[index - 1], upper / 2.0)
    counts = np.maximum(histograms[rows, index], 1)
    fraction = np.clip((ranks - (cumulative[rows, index] - histograms[rows, index])) / counts, 0.0, 1.0)
    # Geometric interpolation, as the buckets are evenly spaced on a log scale; the overflow bucket (slower
    # than the last edge) is clipped to that edge.
    seconds = lower * (upper / lower) ** fraction
    return [
        round(float(ms), 3) if total else None for ms, total in zip(seconds * 1000.0, totals, strict=True)
    ]


class Timeline:
    """This worker's ring of per-second rows, and a reader of every worker's rings."""

    def __init__(self, directory: str | None = None, name: str = "timeline") -> None:
        """`name` tells this timeline's files from another's in the same directory."""
        self._directory = Path(directory) if directory else None
        self._name = name
        own_file = self._directory / f"{name}_{os.getpid()}.bin" if self._directory else None
        self._ring = _own_ring(own_file)
        self._lock = threading.Lock()

    def record(self, seconds: float, error: bool, now: float | None = None) -> None:
        """Count one answered request that took `seconds`."""
        second = int(now if now is not None else time.time())
        bucket = FIRST_BUCKET + bisect.bisect_left(BUCKET_EDGE_LIST, seconds)
        row = self._ring[second % SECONDS_KEPT]
        with self._lock:
            if row[SECOND] != second:
                # Reuse a row from SECONDS_KEPT ago: clear it before stamping it, so no reader mixes the two.
                row[REQUESTS:] = 0
                row[SECOND] = second
            row[REQUESTS] += 1
            row[ERRORS] += error
            row[bucket] += 1

    def _rings(self) -> list[np.ndarray]:
        if self._directory is None:
            return [self._ring]
        rings = []
        for path in sorted(self._directory.glob(f"{self._name}_*.bin")):
            values = np.fromfile(path, np.int64)
            if values.size == SECONDS_KEPT * ROW_WIDTH:  # else a worker is creating it this very moment
                rings.append(values.reshape(SECONDS_KEPT, ROW_WIDTH))
        return rings

    def window(self, seconds: int, now: float | None = None) -> np.ndarray:
        """Rows for the last `seconds` complete seconds, oldest first, summed over every worker."""
        seconds = min(seconds, SECONDS_KEPT - 1)
        last = int(now if now is not None else time.time()) - 1
        wanted = np.arange(last - seconds + 1, last + 1)
        summed = np.zeros((seconds, ROW_WIDTH), np.int64)
        for ring in self._rings():
            rows = ring[wanted % SECONDS_KEPT]
            fresh = rows[:, SECOND] == wanted
            summed[fresh] += rows[fresh]
        summed[:, SECOND] = wanted
        return summed

    def summary(self, seconds: int = SECONDS_KEPT - 1, recent: int = 60, now: float | None = None) -> dict:
        """Per-second series for charts, and totals over the last `recent` seconds."""
        rows = self.window(seconds, now)
        series = {
            "end": int(rows[-1, SECOND]) if len(rows) else None,
            "requests": rows[:, REQUESTS].tolist(),
            "errors": rows[:, ERRORS].tolist(),
        }
        for p in PERCENTILES:
            series[f"p{p}_ms"] = percentiles_ms(rows[:, FIRST_BUCKET:], p)
        latest = rows[-recent:]
        histogram = latest[:, FIRST_BUCKET:].sum(axis=0, keepdims=True)
        totals = {
            "seconds": len(latest),
            "requests": int(latest[:, REQUESTS].sum()),
            "errors": int(latest[:, ERRORS].sum()),
            "requests_per_s": float(latest[:, REQUESTS].sum()) / max(len(latest), 1),
        }
        for p in PERCENTILES:
            totals[f"p{p}_ms"] = percentiles_ms(histogram, p)[0]
        return {"series": series, "recent": totals}
