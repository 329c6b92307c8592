"""TLS: `nosetrack serve --certfile --keyfile` speaks https:// and wss://, and the clients take a CA file."""

from __future__ import annotations

import ssl

import cv2
import pytest
import requests
from certificates import make_certificate
from conftest import LiveServer

from nosetrack import Client
from nosetrack.cli import main
from nosetrack.launcher import free_port


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, certificate):
    certificate_path, key_path = certificate
    server = LiveServer(
        tmp_path_factory.mktemp("tls-server"),
        *(
            "--workers",
            "1",
            "--threads",
            "1",
            "--certfile",
            str(certificate_path),
            "--keyfile",
            str(key_path),
        ),
        ca_file=certificate_path,
    )
    yield server
    server.stop()


def test_the_api_answers_over_https_only(tls_server, certificate, face_jpeg):
    response = requests.post(
        tls_server.url + "/v1/nose",
        data=face_jpeg,
        headers={"Content-Type": "image/jpeg"},
        verify=str(certificate[0]),
        timeout=30,
    )
    assert response.status_code == 200 and response.json()["detected"]
    with pytest.raises(requests.ConnectionError):
        requests.get(tls_server.url.replace("https://", "http://") + "/healthz", timeout=5)


def test_the_client_predicts_and_tracks_over_https_and_wss_with_the_ca_file(
    tls_server, certificate, face_jpeg
):
    client = Client(tls_server.url, ca_file=certificate[0])
    assert client.predict_bytes(face_jpeg)["detected"]
    answers = list(client.track([face_jpeg] * 5, options={"beta": 0.5}))
    assert [answer["frame"] for answer in answers] == [0, 1, 2, 3, 4]
    assert all(answer["detected"] for answer in answers)


def test_the_client_refuses_a_certificate_it_was_not_told_to_trust(tls_server, face_jpeg):
    with pytest.raises(requests.exceptions.SSLError):
        Client(tls_server.url).predict_bytes(face_jpeg)
    with pytest.raises(ssl.SSLCertVerificationError):
        list(Client(tls_server.url).track([face_jpeg]))


def test_track_command_reads_a_video_through_wss(tls_server, certificate, astronaut_bgr, tmp_path):
    video = tmp_path / "still.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (512, 512))
    for _ in range(5):
        writer.write(astronaut_bgr)
    writer.release()
    rows = tmp_path / "rows.jsonl"
    url, ca_file = tls_server.url, str(certificate[0])
    assert main(["track", str(video), "--url", url, "--ca-file", ca_file, "-o", str(rows)]) == 0
    assert len(rows.read_text().splitlines()) == 5


def test_serve_wants_both_tls_files_and_existing_ones(certificate, capsys):
    certificate_path, _ = certificate
    port = ["--port", str(free_port())]  # a free port, so only the TLS files can be what is refused
    assert main(["serve", *port, "--certfile", str(certificate_path)]) == 2
    assert "both --certfile and --keyfile" in capsys.readouterr().err
    assert (
        main(["serve", *port, "--certfile", str(certificate_path), "--keyfile", "/nonexistent/key.pem"]) == 2
    )
    assert "no such file" in capsys.readouterr().err
