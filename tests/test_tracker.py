"""The tracker on synthetic video: ids, when the detector runs, faces that leave, timestamps, user models."""

import cv2
import numpy as np
import pytest
from conftest import encode

import nosetrack
from nosetrack.answer import tracked_answer
from nosetrack.images import CheckedImage
from nosetrack.models import load_model
from nosetrack.predictor import track_checked
from nosetrack.tracking import Tracker, TrackerOptions

FPS = 30.0
FRAME_SIZE = (640, 480)
KEYPOINTS_SPEC = "tests/fixtures/models/keypoints.toml"
NOSE_IN_PATCH = (104, 127)  # where the default model puts the nose in `face_patch`


@pytest.fixture(scope="module")
def face_patch(astronaut_bgr) -> np.ndarray:
    """Eileen Collins' head and shoulders, 220 x 240 pixels."""
    return astronaut_bgr[0:240, 120:340].copy()


def scene(face_patch: np.ndarray, *corners: tuple[int, int]) -> np.ndarray:
    """A grey 640x480 frame with the face pasted with its top-left corner at each of `corners`."""
    frame = np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 110, np.uint8)
    height, width = face_patch.shape[:2]
    for x, y in corners:
        frame[y : y + height, x : x + width] = face_patch
    return frame


def run(tracker: Tracker, model, frames, times=None) -> list:
    times = np.arange(len(frames)) / FPS if times is None else times
    return [tracker.update(model, frame, time) for frame, time in zip(frames, times, strict=True)]


def ids(frame) -> list[int]:
    return [face.id for face in frame.faces]


def test_a_moving_face_keeps_its_id_and_is_followed_without_the_detector(model, face_patch):
    frames = [scene(face_patch, (40 + 8 * i, 100 + 2 * i)) for i in range(30)]
    tracked = run(Tracker(TrackerOptions(redetect_frames=0, redetect_seconds=0)), model, frames)
    assert all(ids(frame) == [1] for frame in tracked)
    assert [frame.detector_ran for frame in tracked] == [True] + [False] * 29
    assert all(frame.faces[0].tracked for frame in tracked[1:])
    raw_x = [frame.faces[0].raw.nose_x for frame in tracked]
    assert raw_x[-1] - raw_x[0] == pytest.approx(8 * 29, abs=6)


@pytest.mark.parametrize(
    ("options", "detected_on"),
    [
        (TrackerOptions(redetect_frames=10, redetect_seconds=0), [0, 10, 20]),
        (TrackerOptions(redetect_frames=0, redetect_seconds=0.3), [0, 9, 18]),
        (TrackerOptions(redetect_frames=12, redetect_seconds=0.3), [0, 9, 18]),
    ],
)
def test_the_detector_also_runs_on_its_schedule(model, face_patch, options, detected_on):
    frames = [scene(face_patch, (200, 100))] * 25
    tracked = run(Tracker(options), model, frames, times=np.arange(25) * 0.0334)
    assert [n for n, frame in enumerate(tracked) if frame.detector_ran] == detected_on
    assert all(ids(frame) == [1] for frame in tracked)


def test_when_the_mesh_loses_the_face_the_detector_finds_it_on_the_same_frame(model, face_patch):
    frames = [scene(face_patch, (20, 40))] * 5 + [scene(face_patch, (400, 220))] * 3
    options = TrackerOptions(redetect_frames=0, redetect_seconds=0, grace_seconds=0)
    tracked = run(Tracker(options), model, frames)
    assert [frame.detector_ran for frame in tracked] == [True, False, False, False, False, True, False, False]
    jumped = tracked[5].faces
    assert len(jumped) == 1 and not jumped[0].tracked
    assert jumped[0].raw.nose_x == pytest.approx(400 + NOSE_IN_PATCH[0], abs=5)


def test_while_a_lost_face_may_come_back_the_detector_looks_for_it_on_every_frame(model, face_patch):
    frames = [scene(face_patch, (20, 40))] * 3 + [scene(face_patch, (400, 220))] * 9
    options = TrackerOptions(redetect_frames=0, redetect_seconds=0, grace_seconds=0.2)
    tracked = run(Tracker(options), model, frames)
    assert [n for n, frame in enumerate(tracked) if frame.detector_ran] == [0, 3, 4, 5, 6, 7, 8, 9]
    assert all(ids(frame) == [2] for frame in tracked[3:])


def test_a_face_that_leaves_is_reported_gone_at_once_and_keeps_its_id_within_the_grace_period(
    model, face_patch
):
    here, empty = scene(face_patch, (200, 100)), scene(face_patch)
    tracker = Tracker(TrackerOptions(grace_seconds=0.5))
    tracked = run(tracker, model, [here] * 5 + [empty] * 6 + [here] * 2)
    assert [len(frame.faces) for frame in tracked] == [1] * 5 + [0] * 6 + [1] * 2
    assert ids(tracked[-1]) == [1]


def test_a_face_gone_longer_than_the_grace_period_comes_back_as_a_new_face(model, face_patch):
    here, empty = scene(face_patch, (200, 100)), scene(face_patch)
    tracked = run(Tracker(TrackerOptions(grace_seconds=0.2)), model, [here] * 3 + [empty] * 12 + [here])
    assert ids(tracked[0]) == [1] and ids(tracked[-1]) == [2]


def test_two_faces_keep_their_ids_and_a_scheduled_detection_adds_no_third(model, face_patch):
    frames = [scene(face_patch, (10 + 2 * i, 60), (400 - 2 * i, 200)) for i in range(25)]
    tracked = run(Tracker(TrackerOptions(redetect_frames=5)), model, frames)
    by_id = [{face.id: face.raw.nose_x for face in frame.faces} for frame in tracked]
    assert all(sorted(noses) == [1, 2] for noses in by_id)
    assert sum(frame.detector_ran for frame in tracked) == 5
    left = 1 if by_id[0][1] < by_id[0][2] else 2
    assert all(noses[left] < 300 for noses in by_id)


def test_frames_may_come_at_irregular_times_but_not_backwards(model, face_patch):
    tracker = Tracker()
    frames = [scene(face_patch, (100 + 10 * i, 100)) for i in range(4)]
    tracked = run(tracker, model, frames, times=[0.0, 0.03, 0.03, 0.5])
    assert all(ids(frame) == [1] for frame in tracked)
    with pytest.raises(ValueError, match="backwards"):
        tracker.update(model, frames[0], 0.4)


def test_the_smoothed_nose_trails_the_raw_one_when_the_face_moves(model, face_patch):
    frames = [scene(face_patch, (40 + 6 * i, 100)) for i in range(20)]
    last = run(Tracker(), model, frames)[-1].faces[0]
    assert last.face.nose_x < last.raw.nose_x
    assert last.raw.nose_x - last.face.nose_x < 6 * 3


def test_a_user_model_is_run_on_every_frame_with_the_same_ids_and_filter(face_patch):
    model = load_model(KEYPOINTS_SPEC)
    frames = [scene(face_patch, (100 + 2 * i, 100)) for i in range(6)]
    tracked = run(Tracker(), model, frames)
    assert all(frame.detector_ran and ids(frame) == [1] for frame in tracked)
    assert not any(frame.faces[0].tracked for frame in tracked)
    assert tracked[-1].faces[0].face != tracked[-1].faces[0].raw


def test_the_answer_carries_the_smoothed_nose_on_top_and_each_faces_id_and_raw_nose(model, face_patch):
    frames = [scene(face_patch, (40 + 6 * i, 100)) for i in range(3)]
    frame = run(Tracker(), model, frames)[-1]
    answer = tracked_answer(frame)
    smoothed, raw = frame.faces[0].face, frame.faces[0].raw
    assert answer["nose"] == {"x": smoothed.nose_x, "y": smoothed.nose_y}
    assert answer["x"] == smoothed.nose_x / 640
    assert answer["timestamp"] == pytest.approx(2 / FPS)
    assert answer["faces"][0]["id"] == 1 and answer["faces"][0]["tracked"] is True
    assert answer["faces"][0]["nose_raw"] == {"x": raw.nose_x, "y": raw.nose_y}


def test_a_frame_decoded_at_half_size_is_answered_in_full_size_pixels(model, face_patch):
    large = cv2.resize(scene(face_patch, (200, 100)), (1280, 960))
    checked = CheckedImage.check(encode(large))
    tracked = track_checked(Tracker(), model, checked, 0.0, decode_min_side=640)
    assert tracked.image.factor == 2
    assert (tracked.frame.width, tracked.frame.height) == (1280, 960)
    assert tracked.frame.faces[0].raw.nose_x == pytest.approx(2 * (200 + NOSE_IN_PATCH[0]), abs=6)


def test_the_python_api_tracks_bare_frames_or_frames_with_timestamps(model, face_patch):
    frames = [scene(face_patch, (100 + 4 * i, 100)) for i in range(3)]
    bare = list(nosetrack.track(frames, model))
    stamped = list(nosetrack.track([(frame, 0.5 * n) for n, frame in enumerate(frames)], model))
    assert [frame.timestamp for frame in bare] == pytest.approx([0.0, 1 / FPS, 2 / FPS])
    assert [frame.timestamp for frame in stamped] == [0.0, 0.5, 1.0]
    assert all(ids(frame) == [1] for frame in bare + stamped)
