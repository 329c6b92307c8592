"""What one worker holds between requests: settings, the model pool and the metrics. No globals."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from flask import Flask

from .. import __version__
from ..config import Settings
from ..pool import ModelPool
from .admission import AdmissionGate
from .dashboard.recent import RecentFrames
from .metrics import Metrics

WARM_UP_IMAGE_SHAPE = (480, 640, 3)


@dataclass
class ServerState:
    settings: Settings
    pool: ModelPool
    metrics: Metrics = field(default_factory=Metrics)
    recent: RecentFrames = field(default_factory=lambda: RecentFrames(0))
    started_at: float = field(default_factory=time.time)
    ready: bool = False
    admission: AdmissionGate = field(init=False)
    # The WebSocket streams this worker holds, and the signal that tells them to close (set on SIGTERM).
    streams: AdmissionGate = field(init=False)
    closing: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.admission = AdmissionGate(self.pool.size + self.settings.max_queue)
        self.streams = AdmissionGate(self.settings.max_streams, "streams")

    def warm_up(self) -> None:
        """Run every instance once, so the first client does not pay for lazy initialisation."""
        image = np.zeros(WARM_UP_IMAGE_SHAPE, dtype=np.uint8)
        for _ in range(self.pool.size):
            with self.pool.lease(timeout=0) as model:
                model.predict(image)
        self.ready = True

    def summary(self) -> dict:
        """What the server is, without what it has served: open to all even when keys are set."""
        return {
            "version": __version__,
            "model": self.pool.info.as_dict(),
            "workers": self.settings.workers,
            "model_instances": self.settings.model_instances,
            "show_recent": self.recent.capacity,
            "uptime_s": time.time() - self.started_at,
        }

    def stats(self) -> dict:
        counts = self.metrics.request_counts()
        return {
            **self.summary(),
            "requests": counts,
            "requests_total": sum(sum(by_status.values()) for by_status in counts.values()),
            "timeline": self.metrics.timeline.summary(),
            "streams": {**self.metrics.streams(), "limit_per_worker": self.settings.max_streams},
        }


def server_state(app: Flask) -> ServerState:
    return app.extensions["nosetrack"]
