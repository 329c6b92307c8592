"""`nosetrack serve`: the app under gunicorn, one model pool per worker process."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile

from gunicorn.app.base import BaseApplication

from ..config import Settings
from .dashboard.recent import RecentFrames

# Threads beyond the models and their queue, so a worker that is full still answers 503 and /healthz at once.
SPARE_THREADS = 2


class CannotListen(OSError):
    """The address to serve on is taken or not ours to take; the message says which, in one sentence."""


def check_address(host: str, port: int) -> None:
    """Bind and release the address once, so a taken port is one clear sentence at once (gunicorn would try it
    five times over four seconds, with an [ERROR] line each time, then exit)."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise CannotListen(f"Cannot listen on {host}: {error.strerror}.") from None
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CannotListen(
                    f"{host}:{port} is already in use (another server?): stop it, or pick another --port."
                ) from None
            raise CannotListen(f"Cannot listen on {host}:{port}: {error.strerror}.") from None


def _child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class NosetrackServer(BaseApplication):
    """gunicorn's threaded workers; each worker loads its own models after the fork (no shared engines)."""

    def __init__(self, settings: Settings, recent: RecentFrames) -> None:
        self.settings = settings
        # Made here, in the master, so the forked workers share its memory.
        self.recent = recent
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        for key, value in {
            "bind": f"{s.host}:{s.port}",
            "workers": s.workers,
            "worker_class": "gthread",
            # Models, predictions waiting for them, and spare threads that refuse the excess quickly.
            "threads": s.model_instances + s.max_queue + SPARE_THREADS,
            # A worker takes no more connections than it has threads, and closes each after its answer: the
            # next request waits in the kernel's queue for a worker with room. With keep-alive, a connection
            # stayed with the worker that first accepted it, and one worker could hold every client.
            "worker_connections": s.model_instances + s.max_queue + SPARE_THREADS,
            "keepalive": 0,
            "timeout": s.timeout,
            "graceful_timeout": s.timeout,
            "preload_app": False,
            "child_exit": _child_exit,
        }.items():
            self.cfg.set(key, value)

    def load(self):
        from .app import create_app

        return create_app(self.settings, recent=self.recent)


def serve(settings: Settings) -> None:
    """Run until SIGTERM or Ctrl-C. Metrics from every worker meet in a fresh temporary directory."""
    metrics_dir = tempfile.mkdtemp(prefix="nosetrack-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        NosetrackServer(settings, RecentFrames(settings.show_recent)).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
