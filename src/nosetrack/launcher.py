"""A server in a child process on 127.0.0.1: a free port, a start, a wait until it answers, a clean stop.

The tests' live servers and every benchmark start servers this way, `nosetrack serve` above all
(`NosetrackProcess`), so that each of them stops exactly what it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import requests

STARTUP_SECONDS = 120.0
STOP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers_ready(url: str, verify: str | bool = True) -> bool:
    """The probe for `nosetrack serve`: /readyz says 200 (the models are loaded and warm)."""
    return requests.get(url + "/readyz", timeout=2, verify=verify).status_code == 200


class ServerProcess:
    """`command(port)` run in its own process group (so stopping ends its children too), with its output in
    `log`; `probe(url)` says when it is ready.

    Ready means `probe` returned true; a probe that raises a requests error counts as not yet.
    """

    def __init__(
        self,
        command: Callable[[int], Sequence[str]],
        log: Path,
        probe: Callable[[str], bool] = answers_ready,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        startup_seconds: float = STARTUP_SECONDS,
        scheme: str = "http",
    ) -> None:
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log = log
        self._output = open(log, "wb")  # noqa: SIM115 (closed by stop)
        self.process = subprocess.Popen(
            list(command(self.port)),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.wait_ready(probe, startup_seconds)
        except BaseException:
            self.stop()  # never leave a server behind a failed start
            raise

    def wait_ready(self, probe: Callable[[str], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log}")
            with contextlib.suppress(requests.RequestException):  # not listening yet, or still loading
                if probe(self.url):
                    return
            time.sleep(0.2)
        raise TimeoutError(f"the server did not become ready in {seconds:g} s; see {self.log}")

    def stop(self, seconds: float = STOP_SECONDS) -> int | None:
        """SIGTERM to the whole group, then SIGKILL to whatever is left of it; the server's exit status."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=seconds)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # children that outlived their parent
        self.process.wait()
        self._output.close()
        return self.process.returncode


class NosetrackProcess(ServerProcess):
    """`nosetrack serve` with `args`, as a user starts it; its log file and output in `folder`, which is also
    its working directory. With `ca_file` (the authority of a --certfile among `args`), it is reached over
    https."""

    def __init__(
        self, folder: Path, *args: str, env: dict[str, str] | None = None, ca_file: Path | None = None
    ) -> None:
        self.log_file = folder / "webserver.log"
        self.ca_file = ca_file
        serve = [sys.executable, "-m", "nosetrack.cli", "serve", "--log-file", str(self.log_file), *args]
        super().__init__(
            lambda port: [*serve, "--port", str(port)],
            folder / "server.out",
            probe=lambda url: answers_ready(url, verify=str(ca_file) if ca_file else True),
            cwd=folder,
            env=env,
            scheme="https" if ca_file else "http",
        )
