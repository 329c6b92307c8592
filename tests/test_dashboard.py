"""The dashboard's server side: the per-second timeline, recent frames, /api/stats and the page's weight."""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_drawn_where_answered, make_test_app

from nosetrack.models import Face, Prediction
from nosetrack.server.dashboard import timeline as timeline_module
from nosetrack.server.dashboard.recent import THUMBNAIL_SIDE, RecentFrames
from nosetrack.server.dashboard.timeline import Timeline

STATIC = Path(timeline_module.__file__).parent / "static"
NOW = 1_800_000_000.0


def test_percentiles_are_within_the_bucket_resolution():
    latencies = np.random.default_rng(0).lognormal(np.log(0.012), 0.6, 5000)
    timeline = Timeline()
    for seconds in latencies:
        timeline.record(seconds, error=False, now=NOW)
    recent = timeline.summary(now=NOW + 1)["recent"]
    for p in (50, 90, 99):
        truth = np.percentile(latencies, p) * 1000
        assert recent[f"p{p}_ms"] == pytest.approx(truth, rel=0.1)


def test_each_second_is_counted_in_its_own_row_and_old_ones_drop_out():
    timeline = Timeline()
    for offset, count in ((0, 3), (1, 5), (3, 2)):
        for _ in range(count):
            timeline.record(0.01, error=offset == 3, now=NOW + offset)
    series = timeline.summary(now=NOW + 4)["series"]
    assert series["requests"][-4:] == [3, 5, 0, 2]
    assert series["errors"][-4:] == [0, 0, 0, 2]
    assert series["p50_ms"][-2] is None
    later = timeline.summary(now=NOW + 4 + timeline_module.SECONDS_KEPT)["series"]
    assert sum(later["requests"]) == 0


def test_the_current_second_waits_until_it_is_complete():
    timeline = Timeline()
    timeline.record(0.01, error=False, now=NOW + 0.2)
    assert sum(timeline.summary(now=NOW + 0.9)["series"]["requests"]) == 0
    assert timeline.summary(now=NOW + 1.0)["series"]["requests"][-1] == 1


def test_workers_timelines_are_summed(tmp_path, monkeypatch):
    workers = []
    for pid in (101, 102):
        monkeypatch.setattr(os, "getpid", lambda pid=pid: pid)
        workers.append(Timeline(str(tmp_path)))
    workers[0].record(0.01, error=False, now=NOW)
    workers[1].record(0.01, error=True, now=NOW)
    workers[1].record(0.02, error=False, now=NOW)
    for reader in workers:
        recent = reader.summary(now=NOW + 1)["recent"]
        assert (recent["requests"], recent["errors"]) == (3, 1)


def test_stats_have_series_for_the_charts_without_the_dashboards_own_polling(client, face_jpeg):
    client.post("/v1/nose", data=face_jpeg, content_type="image/jpeg")
    client.post("/v1/nose", data=b"x", content_type="text/plain")
    for _ in range(3):
        client.get("/api/stats")
    timeline = client.get("/api/stats").get_json()["timeline"]
    assert set(timeline["series"]) == {"end", "requests", "errors", "p50_ms", "p90_ms", "p99_ms"}
    assert len(timeline["series"]["requests"]) == timeline_module.SECONDS_KEPT - 1
    # The two requests fall in the current second, which the window leaves out until it ends.
    timeline = client.application.extensions["nosetrack"].metrics.timeline
    assert timeline.summary(now=time.time() + 1)["recent"]["requests"] == 2


def test_a_recent_thumbnail_shows_the_faces_where_the_answer_puts_them(pool, face_jpeg):
    client = make_test_app(pool, show_recent=1).test_client()
    answer = client.post("/v1/nose", data=face_jpeg, content_type="image/jpeg").get_json()
    frame = client.get("/api/recent").get_json()["frames"][0]
    jpeg = base64.b64decode(frame["jpeg"].removeprefix("data:image/jpeg;base64,"))
    thumbnail = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(face_jpeg, np.uint8), cv2.IMREAD_COLOR)
    scale = thumbnail.shape[1] / original.shape[1]
    shrunk = cv2.resize(original, thumbnail.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert len(answer["faces"]) == 1
    assert_drawn_where_answered(thumbnail, shrunk, answer["faces"][0], scale)


def test_recent_frames_are_off_by_default(client, face_jpeg):
    client.post("/v1/nose", data=face_jpeg, content_type="image/jpeg")
    assert client.get("/api/recent").get_json() == {"enabled": False, "capacity": 0, "frames": []}
    assert client.get("/api/stats").get_json()["show_recent"] == 0


def test_recent_frames_keep_the_last_n_with_the_faces_drawn(pool, face_jpeg, no_face_jpeg):
    client = make_test_app(pool, show_recent=3).test_client()
    for body in (face_jpeg, face_jpeg, no_face_jpeg, face_jpeg, no_face_jpeg):
        client.post("/v1/nose", data=body, content_type="image/jpeg")
    recent = client.get("/api/recent").get_json()
    assert recent["enabled"] is True
    assert [frame["sequence"] for frame in recent["frames"]] == [5, 4, 3]
    assert [frame["faces"] for frame in recent["frames"]] == [0, 1, 0]
    jpeg = base64.b64decode(recent["frames"][1]["jpeg"].removeprefix("data:image/jpeg;base64,"))
    thumbnail = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert max(thumbnail.shape[:2]) == THUMBNAIL_SIDE
    assert [f["sequence"] for f in client.get("/api/recent?after=4").get_json()["frames"]] == [5]
    assert client.get("/api/recent?after=junk").status_code == 200


def test_recent_frames_are_shared_with_forked_processes(astronaut_bgr):
    recent = RecentFrames(4)
    prediction = Prediction(200, 200, [Face(100.0, 120.0)])
    pid = os.fork()
    if pid == 0:  # the child, as a gunicorn worker would; a small image, so no resize runs after the fork
        recent.add(astronaut_bgr[:200, 100:300], prediction, {"route": "/v1/nose", "faces": 1})
        os._exit(0)
    os.waitpid(pid, 0)
    frames = recent.frames()
    assert len(frames) == 1 and frames[0]["route"] == "/v1/nose"


def test_page_weight_is_under_300_kb_and_nothing_comes_from_elsewhere(client):
    page = client.get("/").get_data()
    assets = [path.read_bytes() for path in STATIC.iterdir()]
    assert len(page) + sum(len(asset) for asset in assets) < 300_000
    for text in [page, *assets]:
        assert not re.search(rb"""(src|href|url|import|from)\s*[(=]?\s*["']?(https?:)?//""", text)
