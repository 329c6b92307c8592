"""`nosetrack serve --ray`: deploy on a running Ray cluster (or a local one started here), serve until Ctrl-C
or SIGTERM, then take the application down again."""

from __future__ import annotations

import signal
import threading

import ray
from ray import serve

from ..config import Settings
from .deployment import application

APP_NAME = "nosetrack"


def connect(address: str | None) -> bool:
    """Join the cluster at `address`, or the one running on this machine, or start one; True when started
    here (and so to be stopped here)."""
    if address:
        ray.init(address=address)
        return False
    try:
        ray.init(address="auto")
        return False
    except ConnectionError:
        ray.init()
        return True


def wait_for_stop() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


def serve_on_ray(settings: Settings, address: str | None) -> None:
    """Deploy nosetrack's replicas and Serve's HTTP proxy on `settings.host`:`settings.port`; block until
    stopped. A cluster that was already running keeps running; only this application is deleted."""
    started_here = connect(address)
    try:
        # No `request_timeout_s`: Ray's proxy would end every stream at it (a WebSocket is one request for
        # its life). Each replica bounds a request's body itself (deployment.ReplicaDoor, --body-timeout).
        http = {"host": settings.host, "port": settings.port}
        serve.start(http_options=http)
        serve.run(application(settings), name=APP_NAME, route_prefix="/")
        try:
            print(f"nosetrack on Ray: http://{settings.host}:{settings.port} (Ctrl-C to stop)", flush=True)
            wait_for_stop()
        finally:
            serve.delete(APP_NAME)
    finally:
        if started_here:
            serve.shutdown()
            ray.shutdown()
