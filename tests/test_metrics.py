"""/metrics under a real two-worker server: every family adds up over both workers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import LiveServer
from prometheus_client.parser import text_string_to_metric_families

GOOD, BAD = 12, 5
MODEL = "nosetrack-facemesh"


def post(url: str, body: bytes) -> int:
    return requests.post(
        url + "/v1/nose", data=body, headers={"Content-Type": "image/jpeg"}, timeout=30
    ).status_code


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = requests.get(url + "/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture(scope="module")
def scraped(tmp_path_factory, face_jpeg):
    server = LiveServer(tmp_path_factory.mktemp("metrics"), "--workers", "2", "--threads", "2")
    bodies = [face_jpeg] * GOOD + [b"not an image"] * BAD
    try:
        # Four at a time, each on a fresh connection, so both workers take a share.
        with ThreadPoolExecutor(4) as executor:
            statuses = list(executor.map(lambda body: post(server.url, body), bodies))
        assert statuses == [200] * GOOD + [415] * BAD
        yield scrape(server.url)
    finally:
        server.stop()


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_and_errors_add_up(scraped):
    assert value(scraped, "nosetrack_requests_total", route="/v1/nose", status="200") == GOOD
    assert value(scraped, "nosetrack_requests_total", route="/v1/nose", status="415") == BAD
    assert value(scraped, "nosetrack_errors_total", route="/v1/nose", code="unsupported_image_type") == BAD


def test_latency_per_route_counts_every_request(scraped):
    assert value(scraped, "nosetrack_request_duration_seconds_count", route="/v1/nose") == GOOD + BAD


def test_decoding_queue_wait_and_inference_count_the_good_requests_per_model(scraped):
    assert value(scraped, "nosetrack_images_decoded_total") == GOOD
    for step in ("queue_wait", "decode", "inference"):
        assert value(scraped, f"nosetrack_{step}_seconds_count", model=MODEL) == GOOD


def test_each_image_counts_as_a_success_or_a_failure_of_its_model(scraped):
    assert value(scraped, "nosetrack_prediction_seconds_count", model=MODEL, outcome="success") == GOOD
    assert value(scraped, "nosetrack_prediction_seconds_count", model=MODEL, outcome="fail") == BAD
    assert value(scraped, "nosetrack_last_prediction_timestamp_seconds", model=MODEL) > 0


def test_nothing_is_in_flight_when_idle(scraped):
    assert ("nosetrack_predictions_in_flight", ()) in scraped
    assert value(scraped, "nosetrack_predictions_in_flight") == 0
