"""`nosetrack serve --ray` as a user runs it: the real command in a subprocess on a free port, queried, then
stopped by SIGTERM or Ctrl-C; what it leaves behind, and where its local cluster listens.

Each command runs with a private RAY_TMPDIR: every process of its cluster carries it in its environment, so
the test finds them all, wherever Ray reparented them, and never mistakes another Ray on this machine for its
own. Slow (a local cluster per command, about a minute each); skipped without the `ray` extra.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from conftest import wait_for

from nosetrack.launcher import ServerProcess, answers_ready, free_port

pytest.importorskip("ray.serve")
pytest.importorskip("a2wsgi")

from nosetrack.cluster.launch import haproxy_installed

pytestmark = pytest.mark.slow

STOP_SECONDS = 15.0  # the bound for a local cluster, from the signal to the last process gone
START_SECONDS = 300.0  # a bound on a loaded 2-core machine, never a speed
LOOPBACK = ("127.0.0.1", "[::ffff:127.0.0.1]", "[::1]")
# Ray 2.60 binds each replica's inter-deployment gRPC server to every interface, whatever the node's address
# (ray/serve/_private/replica.py, `add_port_to_grpc_server(self._server, "[::]:0")`): not ours to change.
RAY_BINDS_EVERYWHERE = ("ray::ServeRepli",)
# The joined cluster runs without Ray's token authentication: a driver that joins by address only uses it when
# told (RAY_AUTH_MODE=token, docs/scale-out.md), and that is Ray's to test, not this file's.
NO_AUTH = {"RAY_AUTH_MODE": "disabled"}


@pytest.fixture
def ray_tmpdir():
    """A private Ray temp dir (short: Ray's socket paths must fit 107 bytes); at the end, whatever process
    still carries it is killed, so that a failing test leaves nothing running."""
    folder = tempfile.mkdtemp(prefix="nt-", dir="/tmp")
    try:
        yield folder
    finally:
        for pid in processes_of(folder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def processes_of(ray_tmpdir: str) -> dict[int, str]:
    """Live processes (pid: name) whose environment has RAY_TMPDIR=`ray_tmpdir`."""
    marker = f"RAY_TMPDIR={ray_tmpdir}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                continue
            stat = Path(f"/proc/{entry}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] != "Z":  # a zombie has ended; only its parent's wait is due
                found[int(entry)] = stat.split("(", 1)[1].rsplit(")", 1)[0]
    return found


def listening_sockets(pids) -> list[tuple[str, str]]:
    """(local address:port, process name) of each TCP socket that one of `pids` listens on."""
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    return [
        (line.split()[3], name)
        for line in lines
        for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line)
        if int(pid) in pids
    ]


def serve_on_ray(
    folder: Path, ray_tmpdir: str, *flags: str, env: dict | None = None, host: str = "127.0.0.1"
) -> ServerProcess:
    """`nosetrack serve --ray --host HOST` with one replica of one model, ready (/readyz 200)."""
    command = [sys.executable, "-m", "nosetrack.cli", "serve", "--ray", "--host", host]
    command += ["--min-replicas", "1", "--max-replicas", "1", "--model-instances", "1"]
    command += ["--log-file", str(folder / "webserver.log"), *flags]
    return ServerProcess(
        lambda port: [*command, "--port", str(port)],
        folder / "server.out",
        probe=answers_ready,
        cwd=folder,
        env={"RAY_TMPDIR": ray_tmpdir, "RAY_ADDRESS": "", **(env or {})},
        startup_seconds=START_SECONDS,
    )


def assert_answers_a_photo(url: str, face_jpeg: bytes) -> None:
    answer = requests.post(
        f"{url}/v1/nose", data=face_jpeg, headers={"Content-Type": "image/jpeg"}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["detected"] is True


def stop_and_time(server: ServerProcess, ray_tmpdir: str, send) -> tuple[float, int | None, dict]:
    """`send()` a signal; seconds until the command exited and no process of its cluster is left, its exit
    status, and what is still running after STOP_SECONDS (if anything)."""
    started = time.monotonic()
    send()
    deadline = started + STOP_SECONDS
    while time.monotonic() < deadline and (server.process.poll() is None or processes_of(ray_tmpdir)):
        time.sleep(0.1)
    return time.monotonic() - started, server.process.poll(), processes_of(ray_tmpdir)


def test_on_a_loopback_host_it_answers_and_its_local_cluster_listens_on_loopback_only(
    tmp_path, ray_tmpdir, face_jpeg
):
    server = serve_on_ray(tmp_path, ray_tmpdir)
    try:
        assert_answers_a_photo(server.url, face_jpeg)
        # Names as the kernel keeps them, cut to 15 characters: ray::DashboardAgent, ray::RuntimeEnvAgent.
        # The raylet starts the agents again if they fail (seen on a busy machine), so wait for them.
        core = {"gcs_server", "raylet", "ray::DashboardA", "ray::RuntimeEnv"}
        wait_for(lambda: core <= set(processes_of(ray_tmpdir).values()), "Ray's core processes", 60)
        processes = processes_of(ray_tmpdir)
        sockets = listening_sockets(processes)
        assert any(name == "gcs_server" for _, name in sockets), sockets
        exposed = [
            (address, name)
            for address, name in sockets
            if not address.startswith(LOOPBACK) and name not in RAY_BINDS_EVERYWHERE
        ]
        assert exposed == [], f"listening beyond loopback: {exposed}"
    finally:
        server.stop()


# Ray's modes: its default proxy, and its throughput-optimized mode (direct ingress, whose replicas Serve
# drains for at least 35 s when an application is deleted; a stopping local cluster does not wait for that).
@pytest.mark.parametrize("mode", [{}, {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}], ids=["proxy", "throughput"])
def test_sigterm_deletes_the_app_and_stops_the_local_cluster_within_15_s(
    tmp_path, ray_tmpdir, face_jpeg, mode
):
    server = serve_on_ray(tmp_path, ray_tmpdir, env=mode)
    try:
        assert_answers_a_photo(server.url, face_jpeg)
        seconds, status, left = stop_and_time(
            server, ray_tmpdir, lambda: os.kill(server.process.pid, signal.SIGTERM)
        )
    finally:
        server.stop()
    assert left == {}, f"still running {STOP_SECONDS:g} s after SIGTERM: {left}"
    assert status == 0, server.log.read_text()[-3000:]
    assert seconds <= STOP_SECONDS
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/healthz", timeout=5)


@pytest.mark.parametrize("mode", [{}, {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}], ids=["haproxy", "throughput"])
def test_ctrl_c_stops_it_and_its_local_cluster_within_15_s_with_haproxy_too(
    tmp_path, ray_tmpdir, face_jpeg, mode
):
    # Not on loopback, the local cluster's front door is Ray's HAProxy ingress where it is installed; HAProxy
    # runs in its worker's process group, outside the cluster's, and once outlived a stop that killed groups.
    server = serve_on_ray(tmp_path, ray_tmpdir, host="0.0.0.0", env=mode)
    try:
        assert_answers_a_photo(server.url, face_jpeg)
        if haproxy_installed():
            assert "haproxy" in processes_of(ray_tmpdir).values()
        # A terminal sends SIGINT to its foreground process group: the command and all it started there.
        seconds, status, left = stop_and_time(
            server, ray_tmpdir, lambda: os.killpg(server.process.pid, signal.SIGINT)
        )
    finally:
        server.stop()
    assert left == {}, f"still running {STOP_SECONDS:g} s after Ctrl-C: {left}"
    assert status == 0, server.log.read_text()[-3000:]
    assert seconds <= STOP_SECONDS


class RayStarted:
    """A cluster as an operator starts it, `ray start --head --block` on the machine's address, in a session
    of its own."""

    def __init__(self, folder: Path, ray_tmpdir: str) -> None:
        port = free_port()
        self.address = f"127.0.0.1:{port}"  # Ray resolves it to the machine's address, where the GCS is
        self.log = folder / "ray-start.out"
        start = "from ray.scripts.scripts import main; main()"
        flags = ["--head", "--block", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"]
        flags += [f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}"]
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-c", start, "start", *flags, "--disable-usage-stats"],
                env={**os.environ, **NO_AUTH, "RAY_TMPDIR": ray_tmpdir},
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while b"Ray runtime started" not in self.log.read_bytes():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"ray start not up in {START_SECONDS:g} s"
            time.sleep(0.2)

    def applications(self) -> list[str]:
        """Serve's applications on the cluster, asked by a driver of its own."""
        ask = (
            "import ray, sys; from ray import serve; ray.init(address=sys.argv[1], log_to_driver=False); "
            "print(sorted(serve.status().applications))"
        )
        answer = subprocess.run(
            [sys.executable, "-c", ask, self.address],
            env={**os.environ, **NO_AUTH},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert answer.returncode == 0, answer.stderr[-2000:]
        return answer.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def test_sigterm_on_a_joined_cluster_deletes_only_the_app_and_the_cluster_keeps_running(
    tmp_path, ray_tmpdir, face_jpeg
):
    cluster = RayStarted(tmp_path, ray_tmpdir)
    try:
        before = set(processes_of(ray_tmpdir))
        server = serve_on_ray(tmp_path, ray_tmpdir, "--address", cluster.address, env=NO_AUTH)
        try:
            assert_answers_a_photo(server.url, face_jpeg)
            os.kill(server.process.pid, signal.SIGTERM)
            status = server.process.wait(timeout=60)
        finally:
            server.stop()
        assert status == 0, server.log.read_text()[-3000:]
        assert cluster.process.poll() is None
        core = {pid for pid, name in processes_of(ray_tmpdir).items() if name in ("gcs_server", "raylet")}
        assert len(core) == 2 and core <= before, "the cluster's GCS and raylet are the ones that ran before"
        assert cluster.applications() == "[]"
    finally:
        cluster.stop()
