"""The HTTP systems under test: how to start each one, wait until it answers, and stop it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from nosetrack.launcher import ServerProcess

BENCH = Path(__file__).resolve().parent


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


def answers_a_prediction(probe_jpeg: bytes):
    """Ready when the system answers the seed's /image-bin with a nose: every system has that route."""

    def probe(url: str) -> bool:
        answer = requests.post(f"{url}/image-bin", files={"image": probe_jpeg}, timeout=5)
        return answer.status_code == 200 and "x" in answer.json()

    return probe


class RunningServer(ServerProcess):
    """A started system, in its own process group, so that stopping it ends exactly what it started
    (LitServe's forked children can outlive their parent and would take CPU from the next system)."""

    def __init__(self, system: System, log_dir: Path, cpus: str | None, probe_jpeg: bytes) -> None:
        self.system = system

        def command(port: int) -> list[str]:
            started = system.command(port, log_dir)
            return ["taskset", "-c", cpus, *started] if cpus else started

        output = log_dir / f"{system.name}-{cpus or 'all'}.out"
        super().__init__(command, output, answers_a_prediction(probe_jpeg), cwd=log_dir)
