"""Shared fixtures: real photographs, the built-in model, an in-process app and a real server."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skimage_data

from nosetrack.config import Settings
from nosetrack.evaluation import ANNOTATED_SET
from nosetrack.launcher import NosetrackProcess
from nosetrack.models import load_model
from nosetrack.pool import ModelPool
from nosetrack.server.app import create_app

WAIT_SECONDS = 30.0  # a bound on waiting for a state, never a speed to assert


def wait_for(condition, what: str, seconds: float = WAIT_SECONDS) -> None:
    """Wait until `condition()` is true; fail after `seconds` naming `what` was awaited."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds:g} s for {what}"
        time.sleep(0.01)


def encode(image_bgr: np.ndarray, extension: str = ".jpg") -> bytes:
    ok, buffer = cv2.imencode(extension, image_bgr)
    assert ok
    return buffer.tobytes()


def _redness(image: np.ndarray, x: float, y: float) -> int:
    blue, green, red = image[round(y), round(x)].astype(int)
    return red - max(blue, green)


def _greenness(image: np.ndarray, x: float, y: float) -> int:
    """Around (x, y), within a pixel: a thin line may land a pixel off once rounded and JPEG-compressed."""
    window = image[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2].astype(int)
    return int((window[..., 1] - np.maximum(window[..., 0], window[..., 2])).max())


def assert_drawn_where_answered(drawn: np.ndarray, original: np.ndarray, face: dict, scale: float = 1):
    """`face` (an answer's face) is drawn on `drawn` where the answer says, times `scale`: a red dot on its
    nose and a green frame on its box's four edges, at pixels that were neither in `original`."""
    nose = (face["nose"]["x"] * scale, face["nose"]["y"] * scale)
    assert _redness(drawn, *nose) - _redness(original, *nose) > 100, "no red dot on the nose"
    box = {key: value * scale for key, value in face["box"].items()}
    middle_x, middle_y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for edge in [
        (middle_x, box["y"]),
        (middle_x, box["y"] + box["height"]),
        (box["x"], middle_y),
        (box["x"] + box["width"], middle_y),
    ]:
        assert _greenness(drawn, *edge) - _greenness(original, *edge) > 40, f"no green box edge at {edge}"


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
    if not (ANNOTATED_SET / "labels.csv").exists():
        pytest.skip(f"the annotated set {ANNOTATED_SET} is not here")
    return ANNOTATED_SET


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


class LiveServer(NosetrackProcess):
    """`nosetrack serve` on 127.0.0.1 for a test. It stops at once on SIGTERM (no drain delay) unless the
    test asks for one with --drain-delay, since a flag wins over its NOSETRACK_ variable."""

    def __init__(
        self, folder: Path, *args: str, env: dict[str, str] | None = None, ca_file: Path | None = None
    ) -> None:
        super().__init__(folder, *args, env={"NOSETRACK_DRAIN_DELAY": "0", **(env or {})}, ca_file=ca_file)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("server"), "--workers", "2", "--threads", "4")
    yield server
    server.stop()
