"""API keys, CORS and what the logs hold."""

from __future__ import annotations

import base64
import io

import pytest
import requests
from conftest import LiveServer, make_test_app

from nosetrack.cli import build_parser
from nosetrack.config import Settings

KEYS = ("first-key-0123", "second-key-4567")
ORIGIN = "https://app.example"


@pytest.fixture
def keyed_client(pool):
    return make_test_app(pool, api_keys=KEYS).test_client()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_unauthorized(response) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("headers", [{}, bearer("wrong"), {"Authorization": f"Basic {KEYS[0]}"}, bearer("")])
def test_prediction_without_a_valid_key_is_401(keyed_client, face_jpeg, headers):
    response = keyed_client.post("/v1/nose", data=face_jpeg, content_type="image/jpeg", headers=headers)
    assert_unauthorized(response)


@pytest.mark.parametrize("key", KEYS)
def test_every_configured_key_is_accepted(keyed_client, face_jpeg, key):
    response = keyed_client.post("/v1/nose", data=face_jpeg, content_type="image/jpeg", headers=bearer(key))
    assert response.status_code == 200 and response.get_json()["detected"]


@pytest.mark.parametrize("path", ["/api/stats", "/api/recent", "/metrics"])
def test_stats_metrics_and_dashboard_data_need_the_key(keyed_client, path):
    assert_unauthorized(keyed_client.get(path))
    assert keyed_client.get(path, headers=bearer(KEYS[1])).status_code == 200


def test_dashboard_page_opens_without_its_numbers_and_asks_for_the_key(keyed_client, face_jpeg):
    keyed_client.post("/image-bin", data={"image": (io.BytesIO(face_jpeg), "f.jpg")}, headers=bearer(KEYS[0]))
    page = keyed_client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-route="/image-bin">0<' in html
    assert '<form id="api-key-form" class="api-key" >' in html


def test_dashboard_page_without_keys_hides_the_key_form(client):
    assert '<form id="api-key-form" class="api-key" hidden>' in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/version", "/static/dashboard.css"])
def test_health_version_and_static_files_stay_open(keyed_client, path):
    assert keyed_client.get(path).status_code == 200


def test_unknown_path_is_still_404_with_keys(keyed_client):
    assert keyed_client.get("/nowhere").status_code == 404


def test_keys_come_from_the_environment_comma_separated():
    settings = Settings.from_environment({"NOSETRACK_API_KEYS": "a1, b2,,"})
    assert settings.api_keys == ("a1", "b2")
    assert Settings.from_environment(settings.as_environment()).api_keys == ("a1", "b2")


def test_repeated_flags_become_the_settings_keys_and_origins():
    args = build_parser().parse_args(["serve", "--api-key", "a1", "--api-key", "b2", "--cors-origin", ORIGIN])
    settings = Settings.from_environment({}, api_keys=args.api_keys, cors_origins=args.cors_origins)
    assert settings.api_keys == ("a1", "b2") and settings.cors_origins == (ORIGIN,)


def test_cors_is_off_unless_configured(client, face_jpeg):
    response = client.post("/v1/nose", data=face_jpeg, content_type="image/jpeg", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options(
        "/v1/nose", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_configured_origin_gets_cors_headers_and_a_preflight_without_key(pool, face_jpeg):
    client = make_test_app(pool, api_keys=KEYS, cors_origins=(ORIGIN,)).test_client()
    preflight = client.options(
        "/v1/nose",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    response = client.post(
        "/v1/nose", data=face_jpeg, content_type="image/jpeg", headers={"Origin": ORIGIN, **bearer(KEYS[0])}
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]
    other = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Origin" in other.headers["Vary"]


def test_logs_hold_neither_keys_nor_image_bytes(tmp_path, face_jpeg):
    server = LiveServer(
        tmp_path, "--workers", "1", "--threads", "1", "--api-key", KEYS[0], "--api-key", KEYS[1]
    )
    try:
        url = server.url
        assert (
            requests.post(
                url + "/v1/nose", data=face_jpeg, headers={"Content-Type": "image/jpeg"}
            ).status_code
            == 401
        )
        encoded = base64.b64encode(face_jpeg).decode()
        answer = requests.post(url + "/image-64", json={"image": encoded}, headers=bearer(KEYS[1]))
        assert answer.status_code == 200
        assert requests.get(url + "/healthz").status_code == 200
    finally:
        server.stop()
    logged = server.log_file.read_text() + server.log.read_text(errors="replace")
    assert answer.json()["request_id"] in logged
    assert not any(key in logged for key in KEYS)
    assert encoded[1000:1064] not in logged
