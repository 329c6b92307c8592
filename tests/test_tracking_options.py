"""Tracking options from a client's JSON message: applied when valid, refused with a sentence otherwise."""

import pytest

from nosetrack.tracking import TrackerOptions


def test_changes_from_a_json_object_are_applied_and_the_rest_kept():
    changed = TrackerOptions().with_changes({"min_cutoff": 2, "redetect_frames": 10})
    assert changed.min_cutoff == 2 and changed.redetect_frames == 10
    assert changed.beta == TrackerOptions().beta


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"smoothing": 1.0}, "Unknown tracking option 'smoothing'; the options are: min_cutoff, beta"),
        ({"min_cutoff": 0}, "'min_cutoff' must be a number of Hz above 0, not 0"),
        ({"beta": -1.0}, "'beta' must be a number, 0 or more, not -1.0"),
        ({"redetect_frames": 2.5}, "'redetect_frames' must be a whole number of frames"),
        ({"grace_seconds": "1"}, "'grace_seconds' must be a number of seconds, 0 or more, not '1'"),
        ({"d_cutoff": True}, "'d_cutoff' must be a number of Hz above 0, not True"),
        ({"redetect_seconds": float("nan")}, "'redetect_seconds' must be a number of seconds"),
    ],
)
def test_an_unknown_key_or_a_value_out_of_range_is_refused_with_the_key_and_what_is_allowed(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrackerOptions().with_changes(changes)
