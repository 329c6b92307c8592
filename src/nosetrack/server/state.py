"""What one worker holds between requests: settings, the model pool and the metrics. No globals."""

from __future__ import annotations

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
from .worker import STOPPING

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

    def __post_init__(self) -> None:
        self.admission = AdmissionGate(self.pool.size + self.settings.max_queue)

    def ready_for(self, environ: dict) -> bool:
        """Whether a load balancer should send requests here: the models are warm and no SIGTERM came."""
        stopping = environ.get(STOPPING)
        return self.ready and not (stopping is not None and stopping.is_set())

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
        }


def server_state(app: Flask) -> ServerState:
    return app.extensions["nosetrack"]
