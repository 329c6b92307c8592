"""What one worker holds between requests: settings, a pool per model, and the metrics. No globals."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from flask import Flask

from .. import __version__
from ..config import Settings
from ..models import check_unique_names
from ..pool import ModelPool
from .admission import AdmissionGate
from .capacity import capacity
from .dashboard.recent import RecentFrames
from .errors import ApiError
from .metrics import Metrics, ModelTotals

WARM_UP_IMAGE_SHAPE = (480, 640, 3)


@dataclass
class ServerState:
    """`pools`: one per model, the first answering every request that names no model. One admission gate
    covers them all: a worker's threads are shared, whichever model a request asks for."""

    settings: Settings
    pools: list[ModelPool]
    metrics: Metrics = field(default_factory=Metrics)
    recent: RecentFrames = field(default_factory=lambda: RecentFrames(0))
    started_at: float = field(default_factory=time.time)
    ready: bool = False
    admission: AdmissionGate = field(init=False)
    models: dict[str, ModelPool] = field(init=False)
    # The WebSocket streams this worker holds.
    streams: AdmissionGate = field(init=False)
    # Set once, when the worker begins to stop (SIGTERM): readiness turns false and streams close (1001).
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        check_unique_names(pool.info for pool in self.pools)
        self.models = {pool.info.name: pool for pool in self.pools}
        limits = capacity(self.settings)
        self.admission = AdmissionGate(limits.predictions)
        self.streams = AdmissionGate(limits.streams, "streams")

    @property
    def default_pool(self) -> ModelPool:
        return self.pools[0]

    def pool_for(self, name: str | None = None, version: str | None = None) -> ModelPool:
        """The pool of the model called `name` (the first model when None), and of `version` when one is
        given; else a 404 `unknown_model` that lists the names. Every route that lets a client choose the
        model resolves it here: /v1/nose?model=, /v2/models/{name}, gRPC, the WebSocket."""
        if name is None:
            return self.default_pool
        pool = self.models.get(name) or self.models.get(f"nosetrack-{name}")  # a built-in's short name
        if pool is None:
            served = ", ".join(repr(served) for served in self.models)
            raise ApiError(404, "unknown_model", f"Unknown model {name!r}; this server serves {served}.")
        if version is not None and version != pool.info.version:
            message = f"Model {name!r} has no version {version!r}; it has {pool.info.version!r}."
            raise ApiError(404, "unknown_model", message)
        return pool

    @property
    def is_ready(self) -> bool:
        """Whether a load balancer should send requests here: the models are warm and no SIGTERM came."""
        return self.ready and not self.stopping.is_set()

    def warm_up(self) -> None:
        """Run every instance once, so the first client does not pay for lazy initialisation."""
        image = np.zeros(WARM_UP_IMAGE_SHAPE, dtype=np.uint8)
        for pool in self.pools:
            for _ in range(pool.size):
                with pool.lease(timeout=0) as model:
                    model.predict(image)
        self.ready = True

    def summary(self) -> dict:
        """What the server is, without what it has served: open to all even when keys are set."""
        return {
            "version": __version__,
            "model": self.default_pool.info.as_dict(),
            "models": [pool.info.as_dict() for pool in self.pools],
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
            "model_totals": self.model_totals(),
            "streams": {**self.metrics.streams(), "limit_per_worker": self.settings.max_streams},
        }

    def model_totals(self) -> dict[str, dict]:
        """Each model's predictions since the start (all workers), for the dashboard."""
        totals = self.metrics.model_totals()
        return {name: dataclasses.asdict(totals.get(name, ModelTotals())) for name in self.models}


def server_state(app: Flask) -> ServerState:
    return app.extensions["nosetrack"]
