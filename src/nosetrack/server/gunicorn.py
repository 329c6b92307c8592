"""`nosetrack serve`: the app under gunicorn, one model pool per worker process."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile

from gunicorn.app.base import BaseApplication

from ..config import Settings
from .dashboard.recent import RecentFrames

# Threads beyond the models and their queue, so a worker that is full still answers 503 and /healthz at once.
SPARE_THREADS = 2


def _child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _post_worker_init(worker) -> None:
    """On SIGTERM, tell the worker's streams to close (1001) before gunicorn waits for its connections:
    a stream, unlike a request, would otherwise hold its connection until the grace period ends."""
    from .state import server_state

    stop_worker = worker.handle_exit

    def close_streams_then_stop(signum, frame) -> None:
        server_state(worker.wsgi).closing.set()
        stop_worker(signum, frame)

    signal.signal(signal.SIGTERM, close_streams_then_stop)


class NosetrackServer(BaseApplication):
    """gunicorn's threaded workers; each worker loads its own models after the fork (no shared engines)."""

    def __init__(self, settings: Settings, recent: RecentFrames) -> None:
        self.settings = settings
        # Made here, in the master, so the forked workers share its memory.
        self.recent = recent
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        # Threads for the models, the predictions waiting for them, spare threads that refuse the excess
        # quickly, and one per stream (a WebSocket holds its thread while it is open).
        threads = s.model_instances + s.max_queue + SPARE_THREADS + s.max_streams
        for key, value in {
            "bind": f"{s.host}:{s.port}",
            "workers": s.workers,
            "worker_class": "gthread",
            "threads": threads,
            # A worker takes no more connections than it has threads, and closes each after its answer: the
            # next request waits in the kernel's queue for a worker with room. With keep-alive, a connection
            # stayed with the worker that first accepted it, and one worker could hold every client.
            "worker_connections": threads,
            "keepalive": 0,
            "timeout": s.timeout,
            "graceful_timeout": s.timeout,
            "preload_app": False,
            "child_exit": _child_exit,
            "post_worker_init": _post_worker_init,
            "certfile": s.certfile,
            "keyfile": s.keyfile,
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
