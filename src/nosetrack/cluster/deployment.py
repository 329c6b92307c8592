"""The Serve application: replicas that each run nosetrack's own Flask app on their own model pool.

Ray's HTTP proxy hands each request, body still encoded, to a replica; the replica answers it exactly as one
`nosetrack serve` worker does (the same routes, payload parsing, limits, API keys, errors and answers), so
there is no second request path. The image is decoded once, in the replica that holds the model: the proxy
ships the bytes the client sent (a tenth of the decoded pixels), and no second hop to a separate model
deployment is paid. Why, with the measurements: docs/scale-out.md.

`serve run nosetrack.cluster.deployment:build_app max_replicas=4` and a Serve config file (docs/scale-out.md)
build the same application as `nosetrack serve --ray`.
"""

from __future__ import annotations

import dataclasses
import os

import ray
from ray import serve
from ray.serve import Application
from ray.serve.config import AutoscalingConfig, BackpressureConfig

from ..config import Settings
from ..server.capacity import capacity

# Requests Ray's proxy may hold for a deployment whose replicas are all full, before it answers 503 itself.
# Replicas refuse their own excess at once (nosetrack's JSON 503), so this queue fills only while replicas
# start or stop; it is bounded, never a backlog.
PROXY_QUEUE = 64
RETRY_AFTER_SECONDS = 1.0


def requests_per_replica(settings: Settings) -> int:
    """What one replica takes at once: as one worker of `nosetrack serve` does (server/capacity.py)."""
    return capacity(settings).requests


class WithoutOwnRequestIdHeader:
    """Ray's proxy gives each request an X-Request-ID (the app takes it as its own, so logs, error bodies and
    Ray's logs agree) and adds that header to every answer; the app's copy would send it twice."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        async def send_without_own_id(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, value) for name, value in message["headers"] if name.lower() != b"x-request-id"
                ]
            await send(message)

        await self.app(scope, receive, send_without_own_id)


@serve.ingress()
class NosetrackReplica:
    """One replica: the front door of one `nosetrack serve` worker, on `settings.model_instances` models."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __serve_build_asgi_app__(self):
        from ..server.app import create_front_door

        return WithoutOwnRequestIdHeader(create_front_door(self.settings))


def replicas_the_cluster_holds(settings: Settings) -> int:
    """How many replicas the connected cluster's CPUs hold now (at least `min_replicas`)."""
    cpus = ray.cluster_resources().get("CPU", 0.0) if ray.is_initialized() else 0.0
    return max(settings.min_replicas, int(cpus / settings.cpus_per_replica))


def deployment_options(settings: Settings) -> dict:
    """Serve's options for the replicas: CPUs, requests each takes, autoscaling, the proxy's queue."""
    options: dict = {
        "ray_actor_options": {"num_cpus": settings.cpus_per_replica},
        "max_ongoing_requests": requests_per_replica(settings),
        "max_queued_requests": PROXY_QUEUE,
        "backpressure_config": BackpressureConfig(status_code=503, retry_after_s=RETRY_AFTER_SECONDS),
        # The app logs every request with Serve's request id; Serve's own access line would say it again.
        "logging_config": {"enable_access_log": False},
    }
    max_replicas = settings.max_replicas or replicas_the_cluster_holds(settings)
    if settings.min_replicas >= max_replicas:
        options["num_replicas"] = settings.min_replicas
    else:
        # Scale on requests held per replica: more than its models can run at once means requests wait.
        options["autoscaling_config"] = AutoscalingConfig(
            min_replicas=settings.min_replicas,
            max_replicas=max_replicas,
            target_ongoing_requests=settings.model_instances,
        )
    return options


def application(settings: Settings) -> Application:
    """The bound application for `serve.run`."""
    deployment = serve.deployment(NosetrackReplica, name="nosetrack", **deployment_options(settings))
    return deployment.bind(settings)


def cluster_settings(environ: dict[str, str], **overrides: object) -> Settings:
    """Settings as on one machine, except two defaults: the log goes to Ray's logs unless a file is asked
    for, and a replica runs one model per CPU it reserves (more served less, docs/scale-out.md)."""
    environ = {"NOSETRACK_LOG_FILE": "", **environ}
    settings = Settings.from_environment(environ, **overrides)
    if overrides.get("model_instances") is None and "NOSETRACK_MODEL_INSTANCES" not in environ:
        settings = dataclasses.replace(settings, model_instances=max(1, round(settings.cpus_per_replica)))
    return settings


def build_app(args: dict[str, str]) -> Application:
    """Serve's application builder: `args` are settings by name (`model`, `max_replicas`, ...), as strings
    from `serve run ... key=value` or a config file's `args`, over the NOSETRACK_* environment."""
    known = {field.name for field in dataclasses.fields(Settings)}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ValueError(f"Unknown nosetrack settings {unknown}; known: {', '.join(sorted(known))}.")
    given = {f"NOSETRACK_{name.upper()}": str(value) for name, value in args.items()}
    return application(cluster_settings({**os.environ, **given}))
