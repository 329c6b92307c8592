"""`nosetrack serve`: the front door under gunicorn with nosetrack's uvicorn worker (server/worker.py), one
pool per model in each worker process, and with --grpc-port the gRPC service in each worker too."""

from __future__ import annotations

import errno
import math
import os
import shutil
import socket
import tempfile

from gunicorn.app.base import BaseApplication

# Nothing imported here may import prometheus_client: serve() must set PROMETHEUS_MULTIPROC_DIR first.
from ..config import Settings
from .capacity import capacity
from .dashboard.recent import RecentFrames
from .worker import FrontDoorWorker


class CannotListen(OSError):
    """The address to serve on is taken or not ours to take; the message says which, in one sentence."""


def check_address(host: str, port: int, flag: str = "--port") -> None:
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
                    f"{host}:{port} is already in use (another server?): stop it, or pick another {flag}."
                ) from None
            raise CannotListen(f"Cannot listen on {host}:{port}: {error.strerror}.") from None


def _child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _start_grpc(worker) -> None:
    """With --grpc-port, each worker serves gRPC on that port too, from its own state (oip/grpc_service.py).
    grpcio is imported here, after the fork: a gRPC runtime started in the master would not survive it."""
    settings = worker.app.settings
    if settings.grpc_port:
        from .oip.grpc_service import start_grpc_server

        worker.grpc_server = start_grpc_server(
            worker.wsgi.state, settings.host, settings.grpc_port, capacity(settings).requests
        )


def _stop_grpc(server, worker) -> None:
    """Once HTTP has drained: the calls in progress get their answers, then the worker exits."""
    grpc_server = getattr(worker, "grpc_server", None)
    if grpc_server is not None:
        grpc_server.stop(grace=worker.app.settings.timeout).wait()


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
            "worker_class": FrontDoorWorker,
            "timeout": s.timeout,
            # The drain delay, then up to --timeout for what was accepted; then the arbiter kills.
            "graceful_timeout": math.ceil(s.drain_delay) + s.timeout,
            "preload_app": False,
            "child_exit": _child_exit,
            "post_worker_init": _start_grpc,
            # No control socket in ~/.gunicorn/ shared by every server of the user (gunicorn >= 25).
            "control_socket_disable": True,
            "worker_exit": _stop_grpc,
            "certfile": s.certfile,
            "keyfile": s.keyfile,
        }.items():
            self.cfg.set(key, value)

    def load(self):
        from .app import create_front_door

        return create_front_door(self.settings, recent=self.recent)


def serve(settings: Settings) -> None:
    """Run until SIGTERM or Ctrl-C. Metrics from every worker meet in a fresh temporary directory."""
    metrics_dir = tempfile.mkdtemp(prefix="nosetrack-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    arbiter = os.getpid()
    try:
        NosetrackServer(settings, RecentFrames(settings.show_recent)).run()
    finally:
        # A worker leaves through here too (gunicorn ends it with SystemExit, in the arbiter's forked frames):
        # only the arbiter removes the directory the workers it starts next will need.
        if os.getpid() == arbiter:
            shutil.rmtree(metrics_dir, ignore_errors=True)
