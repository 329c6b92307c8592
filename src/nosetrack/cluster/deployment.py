"""The Serve application: replicas that each run nosetrack's own Flask app on their own model pool.

Ray's HTTP proxy hands each request, body still encoded, to a replica; the replica answers it exactly as one
`nosetrack serve` worker does (the same routes, payload parsing, limits, API keys, errors and answers), so
there is no second request path. The image is decoded once, in the replica that holds the model: the proxy
ships the bytes the client sent (a tenth of the decoded pixels), and no second hop to a separate model
deployment is paid. Why, with the measurements: docs/scale-out.md.

A tracking stream (WS /v1/track) is one request to Ray for its whole life: the proxy relays its messages to
the replica that accepted it, which serves it as a worker does. So Ray may send a replica its requests and
its streams (`capacity(settings).ongoing`), and a replica that Ray stops closes its streams with 1001
(drain.py).

`serve run nosetrack.cluster.deployment:build_app max_replicas=4` and a Serve config file (docs/scale-out.md)
build the same application as `nosetrack serve --ray`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os

import ray
from ray import serve
from ray.serve import Application
from ray.serve.config import AutoscalingConfig, BackpressureConfig

from ..config import Settings
from ..server.capacity import capacity
from .drain import watch_for_drain

# Requests Ray's proxy may hold for a deployment whose replicas are all full, before it answers 503 itself.
# Replicas refuse their own excess at once (nosetrack's JSON 503), so this queue fills only while replicas
# start or stop; it is bounded, never a backlog.
PROXY_QUEUE = 64
RETRY_AFTER_SECONDS = 1.0


def requests_per_replica(settings: Settings) -> int:
    """What Ray may send one replica at once: what one worker of `nosetrack serve` takes (its requests and
    its open streams, server/capacity.py). The replica itself refuses what passes its own limits."""
    return capacity(settings).ongoing


class ReplicaDoor:
    """The front door as a replica runs it, with what Ray's proxy does differently from `nosetrack serve`:

    - Ray's proxy gives each request an X-Request-ID (the app takes it as its own, so logs, error bodies and
      Ray's logs agree) and adds that header to every answer; the app's copy would send it twice.
    - Ray's proxy puts no deadline on a request's body (its `request_timeout_s` would also end every stream,
      so it is not set): here an HTTP request's body must be whole within `--body-timeout` (408, as on one
      machine). Streams have their own deadlines (idle, send timeout).
    """

    def __init__(self, app, body_timeout: float) -> None:
        self.app = app
        self.body_timeout = body_timeout

    async def __call__(self, scope, receive, send) -> None:
        async def send_without_own_id(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, value) for name, value in message["headers"] if name.lower() != b"x-request-id"
                ]
            await send(message)

        if scope["type"] == "http":
            receive = self._within_deadline(receive, send_without_own_id)
        await self.app(scope, receive, send_without_own_id)

    def _within_deadline(self, receive, send):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        whole = False

        async def receive_within_deadline() -> dict:
            nonlocal whole
            if whole:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                from ..server.front_door import send_canned

                message = "The request did not arrive whole in time (--body-timeout)."
                await send_canned(send, 408, "request_timeout", message, {"connection": "close"})
                return {"type": "http.disconnect"}
            whole = not message.get("more_body", False)
            return message

        return receive_within_deadline


@serve.ingress()
class NosetrackReplica:
    """One replica: the front door of one `nosetrack serve` worker, on `settings.model_instances` models."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.door = None

    def __serve_build_asgi_app__(self):
        from ..server.app import create_front_door

        self.door = create_front_door(self.settings)
        watch_for_drain(self.door.state.stopping)
        return ReplicaDoor(self.door, self.settings.body_timeout)

    def __del__(self) -> None:
        """Ray's public shutdown hook, called once the replica has drained (drain.py watches earlier)."""
        if getattr(self, "door", None) is not None:
            self.door.state.stopping.set()


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
        # Scale on what each replica holds, requests and open streams (server/capacity.py: `busy`).
        options["autoscaling_config"] = AutoscalingConfig(
            min_replicas=settings.min_replicas,
            max_replicas=max_replicas,
            target_ongoing_requests=capacity(settings).busy,
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
