"""Tracking II: scene cuts end every id, a jump onto another face starts a new one, ids report their age,
re-detection sees turned faces, and the mirrored pass runs on its schedule."""

import cv2
import numpy as np
import pytest

from nosetrack.answer import tracked_answer
from nosetrack.tracking import Tracker, TrackerOptions
from nosetrack.tracking.scene import SceneCuts

FPS = 30.0
SIZE = (640, 480)


@pytest.fixture(scope="module")
def face_patch(astronaut_bgr) -> np.ndarray:
    """Eileen Collins' head and shoulders, 220 x 240 pixels."""
    return astronaut_bgr[0:240, 120:340].copy()


def frame_with(
    patch: np.ndarray, corner: tuple[int, int], background: np.ndarray | None = None
) -> np.ndarray:
    frame = np.full((SIZE[1], SIZE[0], 3), 110, np.uint8) if background is None else background.copy()
    x, y = corner
    height, width = patch.shape[:2]
    frame[y : y + height, x : x + width] = patch
    return frame


def another_background() -> np.ndarray:
    """A picture unlike the grey one: a colour gradient."""
    ramp = np.linspace(0, 255, SIZE[0], dtype=np.uint8)
    frame = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    frame[:, :, 0], frame[:, :, 2] = ramp, ramp[::-1]
    frame[:, :, 1] = 200
    return frame


def run(tracker: Tracker, model, frames) -> list:
    return [tracker.update(model, frame, n / FPS) for n, frame in enumerate(frames)]


def test_a_scene_cut_ends_every_id_and_the_new_shot_is_searched_on_its_first_frame(model, face_patch):
    before = [frame_with(face_patch, (200, 100))] * 5
    after = [frame_with(face_patch, (210, 110), another_background())] * 3
    tracked = run(Tracker(), model, before + after)
    assert [frame.scene_cut for frame in tracked] == [False] * 5 + [True, False, False]
    old_ids = {face.id for frame in tracked[:5] for face in frame.faces}
    assert old_ids == {1}
    assert tracked[5].detector_ran and len(tracked[5].faces) == 1
    assert {face.id for frame in tracked[5:] for face in frame.faces} == {2}


def test_without_cut_detection_a_much_larger_face_in_the_same_place_gets_a_new_id(model, face_patch):
    close_up = cv2.resize(face_patch, None, fx=1.9, fy=1.9)
    frames = [frame_with(face_patch, (230, 150))] * 4 + [frame_with(close_up, (110, 10))] * 3
    tracked = run(Tracker(TrackerOptions(cut_threshold=0.0)), model, frames)
    assert [face.id for face in tracked[3].faces] == [1]
    assert all([face.id for face in frame.faces] == [2] for frame in tracked[4:])


def test_each_face_reports_how_long_its_id_has_lived(model, face_patch):
    frames = [frame_with(face_patch, (100 + 4 * n, 120)) for n in range(10)]
    tracked = run(Tracker(), model, frames)
    assert [frame.faces[0].age for frame in tracked] == pytest.approx(np.arange(10) / FPS)
    answer = tracked_answer(tracked[-1])
    assert answer["faces"][0]["age"] == pytest.approx(9 / FPS)
    assert answer["scene_cut"] is False


def test_ordinary_motion_is_not_a_scene_cut(face_patch):
    cuts = SceneCuts(TrackerOptions().cut_threshold)
    moving = [frame_with(face_patch, (60 + 12 * n, 100 + 3 * n)) for n in range(20)]
    assert not any(cuts.is_cut(frame) for frame in moving)
    assert cuts.is_cut(frame_with(face_patch, (300, 160), another_background()))


@pytest.mark.parametrize("quarters", [-1, 2], ids=["on its side", "upside down"])
def test_a_turned_face_that_appears_is_found_within_two_frames_where_the_photo_pipeline_puts_it(
    model, face_patch, quarters
):
    turned = np.ascontiguousarray(np.rot90(face_patch, quarters))
    empty = np.full((SIZE[1], SIZE[0], 3), 110, np.uint8)
    frames = [empty] * 3 + [frame_with(turned, (200, 150))] * 4
    photo = model.predict(frames[-1]).faces[0]
    tracked = run(Tracker(), model, frames)
    assert not any(frame.faces for frame in tracked[:3])
    assert all(len(frame.faces) == 1 for frame in tracked[5:])
    for frame in tracked[5:]:
        nose = frame.faces[0].raw
        assert np.hypot(nose.nose_x - photo.nose_x, nose.nose_y - photo.nose_y) < 5


def test_re_detection_looks_at_turned_views_where_the_upright_ones_find_nothing(model, face_patch):
    upside_down = frame_with(np.ascontiguousarray(face_patch[::-1, ::-1]), (200, 150))
    assert model.detect_crops(upside_down) == []
    assert len(model.detect_crops(upside_down, 2)) == 1


class CountingMirrors:
    """The default model, recording whether each mesh pass also looked at the mirrored crop."""

    def __init__(self, model) -> None:
        self._model, self.info, self.mirrored = model, model.info, []

    def predict(self, image):
        return self._model.predict(image)

    def detect_crops(self, image, quarter_turns: int = 0):
        return self._model.detect_crops(image, quarter_turns)

    def mesh_on_crop(self, image, crop, mirror: bool = False):
        self.mirrored.append(mirror)
        return self._model.mesh_on_crop(image, crop, mirror)


def test_the_mirrored_pass_runs_once_every_mirror_every_frames_and_its_correction_is_carried(
    model, face_patch
):
    frames = [frame_with(face_patch, (200, 100))] * 9
    counting = CountingMirrors(model)
    options = TrackerOptions(mirror_every=4, redetect_frames=0, redetect_seconds=0)
    scheduled = run(Tracker(options), counting, frames)
    assert counting.mirrored == [True, False, False, False, True, False, False, False, True]
    always = run(Tracker(TrackerOptions(mirror_every=1)), model, frames)
    for carried, measured in zip(scheduled, always, strict=True):
        assert carried.faces[0].raw.nose_x == pytest.approx(measured.faces[0].raw.nose_x, abs=0.5)
        assert carried.faces[0].raw.nose_y == pytest.approx(measured.faces[0].raw.nose_y, abs=0.5)
