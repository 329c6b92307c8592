"""The HTTP systems under test: how to start each one, wait until it answers, and stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
STARTUP_SECONDS = 120


@dataclass(frozen=True)
class System:
    """One server design: `command(port)` starts it on 127.0.0.1."""

    name: str
    label: str
    arguments: tuple[str, ...] = field(default_factory=tuple)

    def command(self, port: int, log_dir: Path) -> list[str]:
        python = sys.executable
        if self.name == "seed":
            log = str(log_dir / "seed-webserver.log")
            return [
                python,
                str(BENCH / "seed_app.py"),
                "--port",
                str(port),
                "--log-file",
                log,
                *self.arguments,
            ]
        if self.name == "litserve":
            return [python, str(BENCH / "litserve_app.py"), "--port", str(port), *self.arguments]
        nosetrack = str(Path(python).with_name("nosetrack"))
        log = str(log_dir / "nosetrack-webserver.log")
        return [nosetrack, "serve", "--port", str(port), "--log-file", log, *self.arguments]


SYSTEMS = {
    "seed": System("seed", "seed design (Flask dev server, one lock)"),
    "litserve": System("litserve", "LitServe (2 workers per route)"),
    "nosetrack": System("nosetrack", "nosetrack serve (defaults)"),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningServer:
    """A started system, in its own process group so that stopping it ends exactly what it started."""

    def __init__(self, system: System, log_dir: Path, cpus: str | None, probe_jpeg: bytes) -> None:
        self.system = system
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = system.command(self.port, log_dir)
        if cpus:
            command = ["taskset", "-c", cpus, *command]
        self._log = open(log_dir / f"{system.name}-{cpus or 'all'}.out", "wb")  # noqa: SIM115 closed by stop()
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, cwd=log_dir
        )
        self._wait_until_answering(probe_jpeg)

    def _wait_until_answering(self, probe_jpeg: bytes) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.system.name} exited with {self.process.returncode}; see {self._log.name}"
                )
            try:
                answer = requests.post(f"{self.url}/image-bin", files={"image": probe_jpeg}, timeout=5)
                if answer.status_code == 200 and "x" in answer.json():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"{self.system.name} did not answer within {STARTUP_SECONDS} s; see {self._log.name}"
        )

    def stop(self) -> None:
        """SIGTERM to the whole group, then SIGKILL to whatever is left of it (LitServe's forked children
        can outlive their parent and would take CPU from the next system under test)."""
        group = self.process.pid
        try:
            os.killpg(group, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self.process.wait()
        self._log.close()
