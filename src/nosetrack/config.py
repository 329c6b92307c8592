"""Settings in one place: defaults, then NOSETRACK_* environment variables, then command-line flags."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields

from .images import DEFAULT_MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 2
    # Model instances per worker: how many predictions one worker runs at once.
    model_instances: int = 2
    # The models to serve: built-in names, model files, specs, or folders of specs. The first answers every
    # route that names no model (the seed's among them). None given: the default built-in model.
    models: tuple[str, ...] = ()
    # A nose calibration file (`nosetrack calibrate`) the built-in models apply; None: FaceMesh's own tip.
    calibration: str | None = None
    # The smallest face the built-in models look for, as an inter-ocular distance in pixels (None: 40).
    min_face: float | None = None
    log_file: str = "webserver.log"
    log_level: str = "INFO"
    max_body_bytes: int = 20 * 1024 * 1024
    # Bytes that all the request bodies a worker is receiving may hold together; a body that would pass it
    # is refused with 503 at once.
    max_buffered_bytes: int = 256 * 1024 * 1024
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    # JPEGs are decoded at 1/2, 1/4 or 1/8 size while their long side stays at least this (0: full size).
    # Off by default: it saves CPU on large photos but costs some accuracy; docs/performance.md has the trade.
    decode_min_side: int = 0
    # How long a request may wait for a free model before the answer is 503.
    queue_timeout: float = 10.0
    # Seconds gunicorn gives a request (and a slow body) before it recycles the worker.
    timeout: int = 30
    # Requests per worker that may wait for a model beyond those being served; more get 503 at once.
    max_queue: int = 32
    # Seconds a client has from its connection to the end of its request; a slower one gets 408.
    body_timeout: float = 10.0
    # Seconds a kept-alive connection may stay idle between requests before the server closes it.
    keep_alive: float = 5.0
    # Seconds the server keeps serving after SIGTERM with /readyz at 503, so load balancers stop sending new
    # requests before the listener closes.
    drain_delay: float = 5.0
    # Bearer keys that prediction, stats and metrics routes demand; none means the API is open.
    api_keys: tuple[str, ...] = ()
    # Origins allowed to call the API from a browser (CORS); none means CORS stays off.
    cors_origins: tuple[str, ...] = ()
    # How many recent predictions the dashboard may show as thumbnails; 0 (off) keeps pictures out of memory.
    show_recent: int = 0
    # Port of the Open Inference Protocol's gRPC service, beside HTTP in every worker (0: off).
    grpc_port: int = 0
    # On a Ray cluster (`nosetrack serve --ray`): replicas, each with `model_instances` models. Autoscaling
    # between the two counts; max None: as many as the cluster's CPUs hold when deployed.
    min_replicas: int = 1
    max_replicas: int | None = None
    cpus_per_replica: float = 1.0
    # WebSocket streams (WS /v1/track) one worker holds at once; more are refused with 503 before the upgrade.
    max_streams: int = 8
    # Seconds a stream may go without a frame before the server closes it.
    stream_idle_timeout: float = 30.0
    # TLS: with both, the server speaks https:// and wss:// only.
    certfile: str | None = None
    keyfile: str | None = None

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Defaults, then NOSETRACK_<FIELD> variables, then the `overrides` that are not None."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            raw = environ.get(f"NOSETRACK_{field.name.upper()}")
            if raw is not None:
                values[field.name] = _parse(field, raw)
        # A repeatable flag arrives as a list; settings hold tuples, so they stay hashable and frozen.
        values.update(
            {
                name: tuple(value) if isinstance(value, list) else value
                for name, value in overrides.items()
                if value is not None
            }
        )
        return cls(**values)

    def as_environment(self) -> dict[str, str]:
        """The settings as NOSETRACK_* variables: the inverse of `from_environment`, for a child process."""
        return {
            f"NOSETRACK_{name.upper()}": ",".join(value) if isinstance(value, tuple) else str(value)
            for name, value in dataclasses.asdict(self).items()
            if value is not None
        }


def _parse(field: dataclasses.Field, raw: str) -> object:
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError:
        raise ValueError(f"NOSETRACK_{field.name.upper()}={raw!r} is not a number.") from None
    return raw
