"""Settings: defaults, then NOSETRACK_<FLAG> variables, then `serve`'s flags, each winning over the last."""

from __future__ import annotations

import dataclasses

import pytest
import requests
from conftest import LiveServer

from nosetrack.cli import build_parser, main, serve_settings
from nosetrack.config import Settings
from nosetrack.launcher import free_port

NUMERIC = [field for field in dataclasses.fields(Settings) if field.type in ("int", "float")]


def settings_for(*flags: str) -> Settings:
    return serve_settings(build_parser().parse_args(["serve", *flags]))


@pytest.mark.parametrize("field", NUMERIC, ids=lambda field: field.name)
def test_every_numeric_setting_reads_its_variable(field, monkeypatch):
    monkeypatch.setenv(f"NOSETRACK_{field.name.upper()}", "7")
    value = getattr(settings_for(), field.name)
    assert value == 7 and type(value).__name__ == field.type


def test_a_fractional_number_is_read_where_the_setting_takes_one(monkeypatch):
    monkeypatch.setenv("NOSETRACK_QUEUE_TIMEOUT", "2.5")
    assert settings_for().queue_timeout == 2.5


def test_a_flag_wins_over_its_variable_and_the_other_variables_still_apply(monkeypatch):
    monkeypatch.setenv("NOSETRACK_PORT", "8000")
    monkeypatch.setenv("NOSETRACK_MAX_QUEUE", "3")
    settings = settings_for("--port", "9000")
    assert (settings.port, settings.max_queue) == (9000, 3)


def test_a_variable_that_is_not_a_number_stops_serve_with_one_sentence(monkeypatch, capsys):
    monkeypatch.setenv("NOSETRACK_MAX_IMAGE_PIXELS", "lots")
    assert main(["serve", "--port", str(free_port())]) == 2
    assert capsys.readouterr().err == "nosetrack: NOSETRACK_MAX_IMAGE_PIXELS='lots' is not a number.\n"


@pytest.mark.slow
def test_a_running_server_takes_its_variables_and_its_flags_over_them(tmp_path, face_jpeg):
    env = {"NOSETRACK_WORKERS": "3", "NOSETRACK_MODEL_INSTANCES": "1", "NOSETRACK_MAX_IMAGE_PIXELS": "1000"}
    server = LiveServer(tmp_path, "--workers", "1", "--max-image-pixels", "10000000", env=env)
    try:
        stats = requests.get(server.url + "/api/stats", timeout=10).json()
        headers = {"Content-Type": "image/jpeg"}
        answer = requests.post(server.url + "/v1/nose", data=face_jpeg, headers=headers, timeout=30)
    finally:
        server.stop()
    assert (stats["workers"], stats["model_instances"]) == (1, 1)
    assert answer.status_code == 200  # 512 x 512 pixels: over the variable's limit, within the flag's
