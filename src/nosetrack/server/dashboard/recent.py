"""The last few predictions as small JPEGs with the faces drawn, for the dashboard. Off unless asked for.

Pictures people send may be private, so this is off by default (`--show-recent N` turns it on), bounded to N
frames, and kept only in memory: an anonymous shared memory map, never a file. `nosetrack serve` makes the
store in gunicorn's master before it forks the workers, so every worker writes into the same N slots and the
dashboard shows the newest frames whichever worker answers it. A process lock guards the slots; a worker
that cannot take it at once drops that frame rather than make a client wait.
"""

from __future__ import annotations

import base64
import json
import mmap
import multiprocessing
import struct
import time
from typing import Any

import cv2
import numpy as np

from ...annotate import draw_prediction
from ...models.base import Prediction

THUMBNAIL_SIDE = 240
# Thick enough to see once the browser shrinks the thumbnail into its grid.
THUMBNAIL_LINE = 2
SLOT_BYTES = 64 * 1024
MAX_FRAMES = 64
# Every slot starts with: sequence number (0 = never written), time, JPEG length, JSON length.
SLOT_HEADER = struct.Struct("<QdII")
COUNTER = struct.Struct("<Q")
JPEG_QUALITIES = (80, 60, 40)


def thumbnail(image: np.ndarray, prediction: Prediction) -> bytes | None:
    """`image` shrunk to THUMBNAIL_SIDE on its long side with the prediction's faces drawn, as a JPEG."""
    scale = min(1.0, THUMBNAIL_SIDE / max(image.shape[:2]))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    # The prediction is in the full image's pixels; `image` may have been decoded smaller (decode_min_side).
    drawn = draw_prediction(small, prediction, THUMBNAIL_LINE, scale=small.shape[1] / prediction.width)
    for quality in JPEG_QUALITIES:
        ok, buffer = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(buffer) <= SLOT_BYTES - SLOT_HEADER.size - 1024:
            return buffer.tobytes()
    return None


class RecentFrames:
    """A ring of `capacity` frames in memory shared with every process forked after it was made."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, min(capacity, MAX_FRAMES))
        self._memory = mmap.mmap(-1, COUNTER.size + self.capacity * SLOT_BYTES) if self.capacity else None
        self._lock = multiprocessing.Lock()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def add(self, image: np.ndarray, prediction: Prediction, details: dict[str, Any]) -> None:
        """Keep a thumbnail of `image` with the prediction's faces; `details` (JSON-able) go beside it."""
        if not self.enabled:
            return
        jpeg = thumbnail(image, prediction)
        meta = json.dumps(details).encode()
        if jpeg is None or SLOT_HEADER.size + len(jpeg) + len(meta) > SLOT_BYTES:
            return
        if not self._lock.acquire(timeout=0.05):
            return
        try:
            sequence = COUNTER.unpack_from(self._memory, 0)[0] + 1
            offset = COUNTER.size + (sequence % self.capacity) * SLOT_BYTES
            SLOT_HEADER.pack_into(self._memory, offset, sequence, time.time(), len(jpeg), len(meta))
            start = offset + SLOT_HEADER.size
            self._memory[start : start + len(jpeg) + len(meta)] = jpeg + meta
            COUNTER.pack_into(self._memory, 0, sequence)
        finally:
            self._lock.release()

    def frames(self, after: int = 0) -> list[dict[str, Any]]:
        """The kept frames newer than sequence number `after`, newest first."""
        if not self.enabled or not self._lock.acquire(timeout=0.2):
            return []
        try:
            snapshot = bytes(self._memory)
        finally:
            self._lock.release()
        frames = []
        for slot in range(self.capacity):
            offset = COUNTER.size + slot * SLOT_BYTES
            sequence, taken_at, jpeg_length, meta_length = SLOT_HEADER.unpack_from(snapshot, offset)
            if sequence <= after:
                continue
            start = offset + SLOT_HEADER.size
            jpeg = snapshot[start : start + jpeg_length]
            meta = json.loads(snapshot[start + jpeg_length : start + jpeg_length + meta_length])
            frames.append(
                {
                    "sequence": sequence,
                    "time": taken_at,
                    **meta,
                    "jpeg": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii"),
                }
            )
        return sorted(frames, key=lambda frame: frame["sequence"], reverse=True)

    def as_dict(self, after: int = 0) -> dict[str, Any]:
        return {"enabled": self.enabled, "capacity": self.capacity, "frames": self.frames(after)}
