"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright, on `nosetrack serve`.

Screenshots land in artifacts/ (gitignored). Skipped only without /usr/bin/chromium; .ci/run installs it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from browser import CHROMIUM, launch_chromium
from certificates import make_certificate
from conftest import LiveServer

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WEBCAM_FRAMES = 20

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # a browser and a live server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = LiveServer(
        tmp_path_factory.mktemp("dashboard"), "--workers", "2", "--threads", "2", "--show-recent", "8"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, astronaut_bgr):
    with sync_api.sync_playwright() as playwright:
        # The TLS test's server has a certificate the test made: Chromium takes it as Playwright tells it to.
        folder = tmp_path_factory.mktemp("chromium")
        context = launch_chromium(playwright, folder, astronaut_bgr, ignore_https_errors=True)
        yield context
        context.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page()
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server.url + "/")
    page.wait_for_selector("#live.live")
    yield page
    page.close()
    # Works offline: every request the page made went to our own server.
    assert all(url.startswith((server.url + "/", "data:", "blob:")) for url in requested), requested


def screenshot(page, name: str, **options) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), **options)


def post_face(server, face_jpeg: bytes) -> dict:
    response = requests.post(
        server.url + "/v1/nose", data=face_jpeg, headers={"Content-Type": "image/jpeg"}, timeout=30
    )
    assert response.status_code == 200
    return response.json()


def marker_pixels(page, selector: str) -> list[tuple[int, int]]:
    """Where the canvas holds the nose marker's colour: read back from the pixels, not from our own data."""
    return [
        tuple(point)
        for point in page.eval_on_selector(
            selector,
            """canvas => {
                const { width, height } = canvas;
                const pixels = canvas.getContext("2d").getImageData(0, 0, width, height).data;
                const found = [];
                for (let i = 0; i < pixels.length; i += 4) {
                    const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
                    if (Math.abs(r - 255) < 12 && Math.abs(g - 43) < 12 && Math.abs(b - 214) < 12) {
                        found.push([(i / 4) % width, Math.floor(i / 4 / width)]);
                    }
                }
                return found;
            }""",
        )
    ]


def test_counters_and_charts_move_after_requests(page, server, face_jpeg):
    before = int(page.text_content('[data-route="/v1/nose"]'))
    for _ in range(6):
        post_face(server, face_jpeg)
    requests.post(server.url + "/v1/nose", data=b"not an image", headers={"Content-Type": "text/plain"})
    page.wait_for_function(
        f"""() => document.querySelector('[data-route="/v1/nose"]').textContent === '{before + 7}'
            && document.getElementById('kpi-rate').textContent !== '0.00'""",
        timeout=10_000,
    )
    error_chip = page.locator("#routes tr.error .status.error", has_text="415")
    assert error_chip.count() == 1
    assert page.text_content("#kpi-p50").endswith("ms")
    assert float(page.text_content("#kpi-rate")) > 0
    assert page.text_content("#model").startswith("nosetrack-facemesh")
    assert page.text_content("#workers") == "2"
    model_row = page.locator("#models tbody tr")
    assert model_row.count() == 1 and model_row.locator("td").first.text_content() == "nosetrack-facemesh"
    assert int(model_row.locator("td.num").first.text_content()) >= 6
    screenshot(page, "dashboard-live.png", full_page=True)


def test_recent_predictions_show_as_thumbnails(page, server, face_jpeg):
    post_face(server, face_jpeg)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#recent-frames img')].some(img => img.naturalWidth > 0)",
        timeout=10_000,
    )
    figures = page.locator("#recent-frames figure")
    assert 1 <= figures.count() <= 8
    assert "1 face" in figures.first.text_content()
    assert page.locator("#recent-off").is_hidden()


def test_try_it_draws_the_nose_where_the_api_answers(page, server, face_jpeg):
    answer = post_face(server, face_jpeg)
    page.set_input_files(
        "#try-file", {"name": "astronaut.jpg", "mimeType": "image/jpeg", "buffer": face_jpeg}
    )
    page.wait_for_selector("#try-canvas:not([hidden])")
    width = page.eval_on_selector("#try-canvas", "c => c.width")
    scale = width / answer["image"]["width"]
    expected = np.array([answer["nose"]["x"], answer["nose"]["y"]]) * scale

    drawn = np.array(marker_pixels(page, "#try-canvas"), dtype=float)
    assert len(drawn) > 20
    assert np.linalg.norm(drawn.mean(axis=0) - expected) < 3.0
    assert np.abs(drawn - expected).max() < 20  # one marker, nothing of its colour elsewhere
    listed = json.loads(page.get_attribute("#try-canvas", "data-noses"))
    assert len(listed) == len(answer["faces"]) == 1
    assert "astronaut.jpg: 1 face" in page.text_content("#try-summary")
    assert json.loads(page.text_content("#try-json"))["x"] == answer["x"]
    screenshot(page, "try-it.png", full_page=True)


def test_try_it_shows_a_hostile_file_name_and_error_as_text(page):
    name = '<img src=x onerror="window.injected=1">.jpg'
    page.set_input_files(
        "#try-file", {"name": name, "mimeType": "image/jpeg", "buffer": b"not a jpeg at all"}
    )
    page.wait_for_selector("#try-summary.error")
    summary = page.locator("#try-summary")
    assert name in summary.text_content()
    assert "415" in summary.text_content() or "422" in summary.text_content()
    assert summary.locator("img").count() == 0
    assert page.evaluate("() => window.injected") is None


def presented_frames(page) -> int:
    """How many frames the camera's video element has shown so far (Chromium counts them for each frame)."""
    return page.evaluate(
        """() => new Promise((resolve) => document.getElementById('webcam-video')
            .requestVideoFrameCallback((now, frame) => resolve(frame.presentedFrames)))"""
    )


def test_webcam_keeps_drawing_the_tracked_nose_as_it_moves(page, server):
    """Frame after frame answered and drawn over the socket, the marker following the face, at the camera's
    pace: every frame the camera shows is sent unless two are still unanswered, and every frame sent is
    answered, none dropped. Counted against the video's own frames, not the clock: a loaded machine slows the
    answers, and then more frames wait for a free place, but none may be lost or ignored."""
    page.click("#webcam-toggle")
    page.wait_for_function(
        "() => Number(document.getElementById('webcam').dataset.frames) >= 10", timeout=60_000
    )
    panel = page.locator("#webcam")

    def count(name: str) -> int:
        return int(panel.get_attribute(f"data-{name}"))

    before = {name: count(name) for name in ("frames", "sent", "busy")}
    shown_before, started = presented_frames(page), time.monotonic()
    xs: list[float] = []

    def followed() -> bool:
        return count("frames") >= before["frames"] + WEBCAM_FRAMES and bool(xs) and max(xs) - min(xs) > 40

    while not followed():
        assert time.monotonic() - started < 120, "no new frames, or a marker that does not follow the face"
        markers = page.get_attribute("#webcam-overlay", "data-noses")
        if markers and markers != "[]":
            xs.append(json.loads(markers)[0]["x"])
        page.wait_for_timeout(100)
    shown = presented_frames(page) - shown_before
    after = {name: count(name) for name in ("frames", "sent", "busy")}
    answered, sent, busy = (after[name] - before[name] for name in ("frames", "sent", "busy"))
    rate = answered / (time.monotonic() - started)
    screenshot(page, "webcam.png", full_page=True)
    page.click("#webcam-toggle")

    # The page's own callback and ours may each miss a frame or two at the edges of the window.
    assert sent + busy >= shown - 3, f"of {shown} camera frames, {sent} sent and {busy} waited for a place"
    assert answered >= sent - 3, f"{sent} frames sent, {answered} answered"  # two in flight, one at an edge
    assert count("detected") >= 0.9 * count("frames")
    assert panel.get_attribute("data-dropped") == "0"  # two in flight: the server never had to drop one
    assert len(marker_pixels(page, "#webcam-overlay")) > 20
    readouts = [page.text_content(f"#webcam-{name}") for name in ("latency", "server")]
    print(
        f"webcam: {answered} of {shown} camera frames answered and drawn ({rate:.1f}/s), {busy} waited;",
        readouts,
    )


def test_keyed_server_dashboard_asks_for_the_key_then_goes_live(browser, tmp_path, face_jpeg):
    key = "dashboard-key-123"
    server = LiveServer(tmp_path, "--workers", "1", "--threads", "2", env={"NOSETRACK_API_KEYS": key})
    page = browser.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda websocket: sockets.append(websocket.url))
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("#api-key-form:not([hidden])")
        assert page.text_content("#live") != "live"
        page.fill("#api-key", key)
        page.click("#api-key-form button")
        page.wait_for_selector("#live.live")
        requests.post(
            server.url + "/v1/nose",
            data=face_jpeg,
            headers={"Content-Type": "image/jpeg", "Authorization": f"Bearer {key}"},
            timeout=30,
        )
        page.wait_for_function("document.querySelector('[data-route=\"/v1/nose\"]').textContent === '1'")
        assert page.is_hidden("#api-key-form")
        assert key not in page.content()
    finally:
        page.close()
        server.stop()


def test_webcam_streams_over_wss_with_an_api_key(browser, tmp_path):
    key = "webcam-key-456"
    certificate, private_key = make_certificate(tmp_path)
    server = LiveServer(
        tmp_path,
        *("--workers", "1", "--threads", "2", "--certfile", str(certificate), "--keyfile", str(private_key)),
        env={"NOSETRACK_API_KEYS": key},
        ca_file=certificate,
    )
    page = browser.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda websocket: sockets.append(websocket.url))
    try:
        page.goto(server.url + "/")
        page.wait_for_selector("#api-key-form:not([hidden])")
        page.fill("#api-key", key)
        page.click("#api-key-form button")
        page.wait_for_selector("#live.live")
        page.click("#webcam-toggle")
        page.wait_for_function(
            "() => Number(document.getElementById('webcam').dataset.frames) >= 15", timeout=20_000
        )
        # The page came over https and the stream over wss (isSecureContext alone is true on 127.0.0.1).
        assert page.evaluate("() => location.protocol") == "https:"
        assert sockets and all(url.startswith("wss://") for url in sockets)
        panel = page.locator("#webcam")
        assert int(panel.get_attribute("data-detected")) >= 0.9 * int(panel.get_attribute("data-frames"))
        page.click("#webcam-toggle")
        assert key not in server.log_file.read_text()
        assert re.search(r"GET /v1/track 101 ", server.log_file.read_text())
    finally:
        page.close()
        server.stop()


def test_webcam_resumes_when_the_worker_of_its_stream_stops(browser, tmp_path):
    """The worker that holds the webcam's stream stops (1001); gunicorn starts another; the panel opens the
    stream again by itself and keeps tracking."""
    server = LiveServer(tmp_path, "--workers", "1")
    page = browser.new_page()
    try:
        page.goto(server.url + "/")
        page.click("#webcam-toggle")
        page.wait_for_function(
            "() => Number(document.getElementById('webcam').dataset.frames) >= 10", timeout=30_000
        )
        arbiter = server.process.pid
        for worker in Path(f"/proc/{arbiter}/task/{arbiter}/children").read_text().split():
            os.kill(int(worker), signal.SIGTERM)
        page.wait_for_function(
            "() => document.getElementById('webcam').dataset.resumed === '1'", timeout=30_000
        )
        frames_at_resume = int(page.locator("#webcam").get_attribute("data-frames"))
        page.wait_for_function(
            f"() => Number(document.getElementById('webcam').dataset.frames) >= {frames_at_resume + 10}",
            timeout=60_000,
        )
        assert page.locator("#webcam-toggle").text_content() == "Stop camera"
        assert re.search(r"WS /v1/track closed 1001 ", server.log_file.read_text())
    finally:
        page.close()
        server.stop()
