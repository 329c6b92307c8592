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
    `requests`: what runs on request threads at once (the predictions and a few spare for cheap routes)."""

    predictions: int
    requests: int
    streams: int


def capacity(settings: Settings) -> Capacity:
    instances = settings.model_instances * len(model_sources(settings.models))
    predictions = instances + settings.max_queue
    return Capacity(predictions, predictions + SPARE_REQUESTS, settings.max_streams)
