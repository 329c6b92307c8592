"""The One Euro filter: steady at rest, a known lag when it cannot speed up, timestamps not frame counts."""

import math

import numpy as np
import pytest

from nosetrack.tracking.one_euro import OneEuroFilter

FPS = 30.0


def run(one_euro: OneEuroFilter, values, times) -> np.ndarray:
    return np.array([one_euro(np.array([value]), time)[0] for value, time in zip(values, times, strict=True)])


def test_the_first_value_passes_through():
    assert OneEuroFilter(1.0, 0.5, 1.0)(np.array([3.0, 4.0]), 10.0) == pytest.approx([3.0, 4.0])


def test_at_rest_it_lets_little_jitter_through():
    times = np.arange(300) / FPS
    noise = np.random.default_rng(0).normal(0.0, 1.0, times.size)
    smoothed = run(OneEuroFilter(min_cutoff=1.0, beta=0.0, d_cutoff=1.0), noise, times)
    assert np.sqrt(np.mean(np.diff(smoothed) ** 2)) < np.sqrt(np.mean(np.diff(noise) ** 2)) / 5


def test_without_beta_a_steady_motion_lags_by_the_cutoffs_time_constant():
    times = np.arange(120) / FPS
    ramp = 100.0 * times
    smoothed = run(OneEuroFilter(min_cutoff=2.0, beta=0.0, d_cutoff=1.0), ramp, times)
    lag_seconds = (ramp[-1] - smoothed[-1]) / 100.0
    assert lag_seconds == pytest.approx(1.0 / (2.0 * math.pi * 2.0), rel=0.01)


def test_speed_opens_the_filter_in_units_of_the_given_scale():
    times = np.arange(60) / FPS
    ramp = 100.0 * times
    one_euro = OneEuroFilter(min_cutoff=1.0, beta=1.0, d_cutoff=1.0)
    large_face = OneEuroFilter(min_cutoff=1.0, beta=1.0, d_cutoff=1.0)
    fast = run(one_euro, ramp, times)
    slow = [
        large_face(np.array([value]), time, scale=1000.0)[0] for value, time in zip(ramp, times, strict=True)
    ]
    assert ramp[-1] - fast[-1] < (ramp[-1] - slow[-1]) / 5


def test_a_dropped_stretch_of_frames_is_bridged_by_the_time_it_took():
    times = np.arange(90) / FPS
    ramp = 50.0 * times
    kept = np.r_[0:30, 45:90]  # half a second of frames lost
    every = run(OneEuroFilter(1.0, 0.5, 1.0), ramp, times)
    gappy = run(OneEuroFilter(1.0, 0.5, 1.0), ramp[kept], times[kept])
    assert gappy[-1] == pytest.approx(every[-1], abs=0.05)


def test_irregular_frame_times_follow_the_same_curve_as_regular_ones():
    regular_times = np.arange(90) / FPS
    irregular_times = np.sort(np.random.default_rng(1).uniform(0.0, 3.0, 90))
    regular = run(OneEuroFilter(1.0, 0.5, 1.0), 20.0 * regular_times, regular_times)
    irregular = run(OneEuroFilter(1.0, 0.5, 1.0), 20.0 * irregular_times, irregular_times)
    assert 20.0 * irregular_times[-1] - irregular[-1] == pytest.approx(
        20.0 * regular_times[-1] - regular[-1], rel=0.1
    )


def test_a_second_value_at_the_same_instant_changes_nothing():
    one_euro = OneEuroFilter(1.0, 0.5, 1.0)
    one_euro(np.array([0.0]), 0.0)
    first = one_euro(np.array([10.0]), 0.1).copy()
    assert one_euro(np.array([500.0]), 0.1) == pytest.approx(first)
