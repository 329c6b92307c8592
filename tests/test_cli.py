"""The `nosetrack` command where new users trip: a stopped server, a closed pipe, a taken port."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
from conftest import encode

from nosetrack.launcher import free_port

NOSETRACK = [sys.executable, "-m", "nosetrack.cli"]


def test_predict_against_a_stopped_server_fails_early_with_one_sentence(tmp_path, face_jpeg):
    (tmp_path / "face.jpg").write_bytes(face_jpeg)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = subprocess.run(
        [*NOSETRACK, "predict", str(tmp_path), "--url", url], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"nothing answers at {url}" in result.stderr
    assert "Traceback" not in result.stderr and "HTTPConnectionPool" not in result.stderr


def test_predict_into_a_closed_pipe_stops_quietly(live_server, tmp_path):
    blank = encode(np.zeros((16, 16, 3), np.uint8), ".png")
    for number in range(120):  # more rows than Python's output buffer holds, so a write meets the closed pipe
        (tmp_path / f"blank{number:03}.png").write_bytes(blank)
    result = subprocess.run(
        f"{sys.executable} -m nosetrack.cli predict {tmp_path} --url {live_server.url} | head -n 0",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr


def test_serve_on_a_taken_port_says_so_once_and_exits_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*NOSETRACK, "serve", "--port", str(port), "--log-file", ""],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert result.returncode == 2
    assert result.stderr.count("already in use") == 1
    assert "[ERROR]" not in result.stderr  # gunicorn never tried its five times


def test_loading_the_built_in_model_prints_nothing(tmp_path):
    """LiteRT's "Created TensorFlow Lite XNNPACK delegate" line stays out of every command's output."""
    script = "from nosetrack.models import load_model; load_model().predict"
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
