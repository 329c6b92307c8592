"""Request counters and latency histograms, right across threads and gunicorn's worker processes.

Under `nosetrack serve`, PROMETHEUS_MULTIPROC_DIR is set before prometheus_client is imported, so every
worker writes its values to shared files and any worker can read the totals.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from .dashboard.timeline import Timeline

# Requests that watch the server rather than use it: counted, but kept out of the timeline's charts, so an
# open dashboard (which polls /api/stats every second) does not show up as load.
MONITORING_ROUTES = frozenset(
    {
        *("/", "/api/stats", "/api/recent", "/metrics", "/healthz", "/readyz", "/static/<path:filename>"),
        *("/openapi.json", "/docs", "/v2/health/live", "/v2/health/ready"),
        *("/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady"),
    }
)
# The WebSocket route: its one request is the upgrade (its log line and count); its frames are counted apart.
STREAM_ROUTE = "/v1/track"
# The per-model histograms behind `ModelTotals`, by the field each fills.
MODEL_HISTOGRAMS = {
    "nosetrack_queue_wait_seconds": "queue",
    "nosetrack_decode_seconds": "decode",
    "nosetrack_inference_seconds": "inference",
}
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
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        self.decode = Histogram(
            "nosetrack_decode_seconds",
            "Time decoding an image for the model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        self.predictions = Histogram(
            "nosetrack_prediction_seconds",
            "Time from an image's arrival at a model to its prediction (outcome success) or failure (fail).",
            ["model", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        self.last_prediction = Gauge(
            "nosetrack_last_prediction_timestamp_seconds",
            "When the model last gave a prediction (Unix time).",
            ["model"],
            multiprocess_mode="max",
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
            ["model"],
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
        self.streams_open = Gauge(
            "nosetrack_streams_open",
            "WebSocket streams (WS /v1/track) open.",
            multiprocess_mode="livesum",
            registry=self._registry,
        )
        self.stream_frames = Counter(
            "nosetrack_stream_frames", "Stream frames answered.", ["outcome"], registry=self._registry
        )
        self.stream_frames_dropped = Counter(
            "nosetrack_stream_frames_dropped",
            "Stream frames skipped unanswered because a newer frame of the stream had arrived.",
            registry=self._registry,
        )
        self.stream_frame_latency = Histogram(
            "nosetrack_stream_frame_seconds",
            "Time from a stream frame's last byte to its answer.",
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.timeline = Timeline(directory)
        self.frames_timeline = Timeline(directory, name="frames")

    def observe_frame(self, seconds: float, error_code: str | None = None) -> None:
        """One stream frame answered `seconds` after its last byte came, with a result or an error."""
        self.stream_frames.labels(outcome="error" if error_code else "ok").inc()
        self.stream_frame_latency.observe(seconds)
        if error_code:
            self.errors.labels(route=STREAM_ROUTE, code=error_code).inc()
        self.frames_timeline.record(seconds, error=error_code is not None)

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

    def streams(self) -> dict:
        """Open streams, frames answered and dropped since start (all workers), and the last minute's."""
        totals: dict[str, float] = defaultdict(float)
        for family in self._collecting_registry().collect():
            for sample in family.samples:
                totals[sample.name] += sample.value
        recent = self.frames_timeline.summary(seconds=60)["recent"]
        return {
            "open": int(totals["nosetrack_streams_open"]),
            "frames_total": int(totals["nosetrack_stream_frames_total"]),
            "dropped_total": int(totals["nosetrack_stream_frames_dropped_total"]),
            "frames_per_s": recent["requests_per_s"],
            "frame_errors": recent["errors"],
            **{f"p{p}_ms": recent[f"p{p}_ms"] for p in (50, 90, 99)},
        }

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

    def model_totals(self) -> dict[str, ModelTotals]:
        """Counts and cumulative times per model, summed over all workers (Triton's statistics extension)."""
        totals: dict[str, ModelTotals] = defaultdict(ModelTotals)
        for family in self._collecting_registry().collect():
            for sample in family.samples:
                model = sample.labels.get("model")
                if model is None:
                    continue
                if family.name == "nosetrack_last_prediction_timestamp_seconds":
                    totals[model].last_prediction = max(totals[model].last_prediction, sample.value)
                elif family.name == "nosetrack_prediction_seconds":
                    totals[model].add(sample.labels["outcome"], sample.name, sample.value)
                elif family.name in MODEL_HISTOGRAMS:
                    totals[model].add(MODEL_HISTOGRAMS[family.name], sample.name, sample.value)
        return dict(totals)


@dataclass
class Duration:
    count: int = 0
    seconds: float = 0.0


@dataclass
class ModelTotals:
    """One model's predictions so far: how many, and the time each step took in all."""

    success: Duration = field(default_factory=Duration)  # check to prediction, per image
    fail: Duration = field(default_factory=Duration)  # refused or failed images, until they failed
    queue: Duration = field(default_factory=Duration)
    decode: Duration = field(default_factory=Duration)
    inference: Duration = field(default_factory=Duration)
    last_prediction: float = 0.0  # Unix time; 0: none yet

    def add(self, step: str, sample_name: str, value: float) -> None:
        """Take a histogram's _count or _sum sample for `step`; its buckets are not needed here."""
        duration: Duration = getattr(self, step)
        if sample_name.endswith("_count"):
            duration.count += int(value)
        elif sample_name.endswith("_sum"):
            duration.seconds += value
