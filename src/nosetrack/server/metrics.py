"""Request counters and latency histograms, right across threads and gunicorn's worker processes.

Under `nosetrack serve`, PROMETHEUS_MULTIPROC_DIR is set before prometheus_client is imported, so every
worker writes its values to shared files and any worker can read the totals.
"""

from __future__ import annotations

import os
from collections import defaultdict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from .dashboard.timeline import Timeline

# Requests that watch the server rather than use it: counted, but kept out of the timeline's charts, so an
# open dashboard (which polls /api/stats every second) does not show up as load.
MONITORING_ROUTES = frozenset(
    {
        *("/", "/api/stats", "/api/recent", "/metrics", "/healthz", "/readyz", "/static/<path:filename>"),
        *("/openapi.json", "/docs", "/v2/health/live", "/v2/health/ready"),
    }
)
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._registry = CollectorRegistry()
        self.requests = Counter(
            "nosetrack_requests", "HTTP requests answered.", ["route", "status"], registry=self._registry
        )
        self.latency = Histogram(
            "nosetrack_request_duration_seconds",
            "Time from request to answer.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        self.inference = Histogram(
            "nosetrack_inference_seconds",
            "Time in the model.",
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        self.errors = Counter(
            "nosetrack_errors",
            "Requests answered with an error, by error code.",
            ["route", "code"],
            registry=self._registry,
        )
        self.queue_wait = Histogram(
            "nosetrack_queue_wait_seconds",
            "Time an admitted prediction waited for a free model.",
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        # Beside the wall time above: the CPU the pipeline's thread spent, so that the server's own cost
        # can be told from the model's (bench/overhead.py compares it with the pipeline in process).
        self.pipeline_cpu = Counter(
            "nosetrack_pipeline_cpu_seconds",
            "CPU time of the pipeline (decode and model) on the request's thread.",
            registry=self._registry,
        )
        self.images_decoded = Counter(
            "nosetrack_images_decoded", "Encoded images decoded to pixels.", registry=self._registry
        )
        # livesum: the sum over living workers, so a dead worker's leftovers do not count.
        self.in_flight = Gauge(
            "nosetrack_predictions_in_flight",
            "Predictions admitted and not yet answered.",
            multiprocess_mode="livesum",
            registry=self._registry,
        )
        self.timeline = Timeline(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

    def observe_request(self, route: str, status: int, seconds: float, error_code: str | None = None) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)
        if status >= 400:
            self.errors.labels(route=route, code=error_code or f"http_{status}").inc()
        if route not in MONITORING_ROUTES:
            self.timeline.record(seconds, error=status >= 400)

    def _collecting_registry(self) -> CollectorRegistry:
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return self._registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format, summed over all workers."""
        return generate_latest(self._collecting_registry())

    def request_counts(self) -> dict[str, dict[str, int]]:
        """Requests answered per route and status, summed over all workers."""
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        for family in self._collecting_registry().collect():
            if family.name != "nosetrack_requests":
                continue
            for sample in family.samples:
                if sample.name == "nosetrack_requests_total":
                    counts[sample.labels["route"]][sample.labels["status"]] = int(sample.value)
        return dict(counts)
