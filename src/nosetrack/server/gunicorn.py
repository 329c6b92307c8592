"""`nosetrack serve`: the app under gunicorn, one model pool per worker process (server/worker.py)."""

from __future__ import annotations

import math
import os
import shutil
import tempfile

from gunicorn.app.base import BaseApplication

from ..config import Settings

# Nothing imported here may import prometheus_client: serve() must set PROMETHEUS_MULTIPROC_DIR first.
from .dashboard.recent import RecentFrames
from .worker import BufferingWorker

# Threads beyond the models and their queue, so a worker that is full still answers 503 and /healthz at once.
SPARE_THREADS = 2


def _child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class NosetrackServer(BaseApplication):
    """gunicorn's arbiter with nosetrack's worker; each worker loads its own models after the fork (no shared
    engines). The worker reads `settings` too (timeouts, body limit, drain delay)."""

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
            "worker_class": BufferingWorker,
            # Models, predictions waiting for them, and spare threads that refuse the excess quickly. A worker
            # accepts connections only while a thread is free, and closes each after its answer: the next
            # request waits in the kernel's queue for a worker with room. (With keep-alive, a connection
            # stayed with the worker that first accepted it, and one worker could hold every client.)
            "threads": s.model_instances + s.max_queue + SPARE_THREADS,
            "timeout": s.timeout,
            # The drain delay, then up to --timeout for what was accepted; then the arbiter kills.
            "graceful_timeout": math.ceil(s.drain_delay) + s.timeout,
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
