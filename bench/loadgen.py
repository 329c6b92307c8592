"""Closed-loop load with wrk (C, one thread, epoll): N clients, each sends its next request on an answer."""

from __future__ import annotations

import base64
import json
import resource
import shutil
import subprocess
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROUTES = ("/image-bin", "/image-64")


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("The benchmark's load generator is wrk: apt-get install -y wrk")
    return wrk


def write_bodies(route: str, photos: list[Path], folder: Path) -> tuple[str, list[Path]]:
    """The request bodies for `route`, one file per photo, and their Content-Type."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    if route == "/image-bin":
        boundary = uuid.uuid4().hex
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        content_type = "application/json"
    for photo in photos:
        data = photo.read_bytes()
        if route == "/image-bin":
            body = (
                (
                    f"--{boundary}\r\n"
                    f'Content-Disposition: form-data; name="image"; filename="{photo.name}"\r\n'
                    f"Content-Type: image/jpeg\r\n\r\n"
                ).encode()
                + data
                + f"\r\n--{boundary}--\r\n".encode()
            )
        else:
            body = json.dumps({"image": base64.b64encode(data).decode()}).encode()
        path = folder / f"{photo.stem}{route.replace('/', '_')}.body"
        path.write_bytes(body)
        paths.append(path)
    return content_type, paths


def run_wrk(url: str, clients: int, seconds: float, content_type: str, bodies: list[Path]) -> dict:
    """One bounded run; returns wrk's numbers plus the CPU seconds wrk itself used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [
        require_wrk(), "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "10s",
        "-s", str(BENCH / "load.lua"), url, "--", content_type, *map(str, bodies),
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(text for text in finished.stdout.splitlines() if text.startswith("{"))
    result = json.loads(line)
    result["loadgen_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result
