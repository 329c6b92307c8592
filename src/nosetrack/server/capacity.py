"""How much one worker (or one Ray replica) takes at once: one function, so the threads that run requests,
the admission that refuses the excess and Ray's `max_ongoing_requests` never disagree."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings
from ..models import model_sources

# Requests beyond the models and their queue, so a full worker still answers 503 and /healthz at once.
SPARE_REQUESTS = 2


@dataclass(frozen=True)
class Capacity:
    """`predictions`: what the admission gate lets in (every model instance, plus `--max-queue` waiting);
    `requests`: what runs on request threads at once (the predictions and a few spare for cheap routes);
    `streams`: the WebSocket streams a worker holds (`--max-streams`); `instances`: the models it runs."""

    predictions: int
    requests: int
    streams: int
    instances: int

    @property
    def ongoing(self) -> int:
        """What a worker (a Ray replica) may hold at once: each open stream is one ongoing request for its
        whole life, beside the HTTP requests (Ray's `max_ongoing_requests`)."""
        return self.requests + self.streams

    @property
    def busy(self) -> float:
        """The ongoing requests at which a worker is as busy as it should be (Ray's autoscaling target):
        every model running, or half its stream slots taken. Ray counts both as one number, so this is a
        compromise: HTTP alone scales up once about `streams / 2` requests wait (docs/scale-out.md)."""
        return self.instances + self.streams / 2


def capacity(settings: Settings) -> Capacity:
    instances = settings.model_instances * len(model_sources(settings.models))
    predictions = instances + settings.max_queue
    return Capacity(predictions, predictions + SPARE_REQUESTS, settings.max_streams, instances)
