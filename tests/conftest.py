"""Shared fixtures: real photographs, the built-in model, an in-process app and a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
from skimage import data as skimage_data

from nosetrack.config import Settings
from nosetrack.models import load_model
from nosetrack.pool import ModelPool
from nosetrack.server.app import create_app

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def encode(image_bgr: np.ndarray, extension: str = ".jpg") -> bytes:
    ok, buffer = cv2.imencode(extension, image_bgr)
    assert ok
    return buffer.tobytes()


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """A face photograph shipped inside scikit-image's wheel, so the suite runs anywhere."""
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def face_jpeg(astronaut_bgr) -> bytes:
    return encode(astronaut_bgr)


@pytest.fixture(scope="session")
def face_png(astronaut_bgr) -> bytes:
    return encode(astronaut_bgr, ".png")


@pytest.fixture(scope="session")
def no_face_jpeg() -> bytes:
    return encode(cv2.cvtColor(skimage_data.coffee(), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "labels.csv").exists():
        pytest.skip("the annotated set ../shared/data is not here")
    return SHARED_DATA


@pytest.fixture(scope="session")
def model():
    return load_model()


@pytest.fixture(scope="session")
def pool():
    return ModelPool(load_model, size=2)


def make_test_app(pool, **settings):
    return create_app(Settings(log_file="", model_instances=pool.size, **settings), pools=[pool])


@pytest.fixture
def app(pool):
    return make_test_app(pool)


@pytest.fixture
def client(app):
    return app.test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """`nosetrack serve` in a subprocess on 127.0.0.1, as a user starts it."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = tmp_path / "webserver.log"
        command = [sys.executable, "-m", "nosetrack.cli", "serve", "--port", str(self.port)]
        command += ["--log-file", str(self.log_file), *args]
        self._error_log = open(tmp_path / "server.err", "wb")  # noqa: SIM115 (closed by stop)
        self.process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self._error_log,
        )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()  # never leave a server behind a failed start
            raise

    def wait_ready(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # a worker still loading its models
                pass
            time.sleep(0.2)
        raise TimeoutError("the server did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._error_log.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("server"), "--workers", "2", "--threads", "4")
    yield server
    server.stop()
