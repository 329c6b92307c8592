"""How a tracker smooths and how often it looks for new faces; settable from a client's JSON message."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# What each option may be: (allowed type, lowest allowed value, whether the lowest is allowed, meaning).
_LIMITS: dict[str, tuple[type, float, bool, str]] = {
    "min_cutoff": (float, 0.0, False, "a number of Hz above 0"),
    "beta": (float, 0.0, True, "a number, 0 or more"),
    "d_cutoff": (float, 0.0, False, "a number of Hz above 0"),
    "redetect_frames": (int, 0, True, "a whole number of frames, 0 or more (0: never by frame count)"),
    "redetect_seconds": (float, 0.0, True, "a number of seconds, 0 or more (0: never by time)"),
    "grace_seconds": (float, 0.0, True, "a number of seconds, 0 or more"),
    "mirror_every": (int, 0, True, "a whole number of frames, 0 or more (0: never, 1: every frame)"),
    "cut_threshold": (float, 0.0, True, "a share of the grey range, 0 or more (0: no cut detection)"),
}


@dataclass(frozen=True)
class TrackerOptions:
    """A stream's tracking settings. The filter's defaults come from `python bench/tracking.py --tune` (on
    still and moving sequences of other photos than the reported ones): at rest the nose jitters about 1/6 as
    much as the raw one; in motion the filter opens fully (no measurable lag at 30 fps), and its error against
    the truth is the lowest on the grid.

    - `min_cutoff` (Hz): the One Euro filter's cutoff at rest. Lower: steadier when still, slower to follow.
    - `beta`: how much the cutoff rises with speed (Hz per face size per second). Higher: less lag when
      moving, more jitter let through.
    - `d_cutoff` (Hz): the cutoff of the speed estimate that drives the above.
    - `redetect_frames`, `redetect_seconds`: the face detector also runs on this schedule, whichever comes
      first, to pick up faces that enter while others are tracked (0 turns one off). It always runs when no
      face is tracked and when FaceMesh says a tracked face is gone.
    - `grace_seconds`: a face lost from view is no longer reported, but its id and filter are kept this
      long: found again within it (near where it was), it is the same face.
    - `mirror_every`: each face's mesh pass also looks at the mirrored crop once every this many frames (and
      on its first); in between, the nose carries the correction that pass found, in the face's own frame.
      1: every frame (twice the mesh cost), 0: never (the default: on the panning sequences of
      `python -m bench.tracking_footage` it bought no accuracy that held from one set of faces to another).
    - `cut_threshold`: a frame whose thumbnail differs from the last one's by more than this (mean absolute
      difference, 0..1 of the grey range) is a scene cut: every track ends there, and the faces after it
      get new ids (0 turns cut detection off).
    """

    min_cutoff: float = 0.5
    beta: float = 64.0
    d_cutoff: float = 1.0
    redetect_frames: int = 30
    redetect_seconds: float = 1.0
    grace_seconds: float = 0.5
    mirror_every: int = 0
    cut_threshold: float = 0.1

    def __post_init__(self) -> None:
        for option in dataclasses.fields(self):
            _check(option.name, getattr(self, option.name))

    def with_changes(self, changes: Mapping[str, Any]) -> TrackerOptions:
        """These options with `changes` (a JSON object from a client) applied; `ValueError` names the first
        key that is unknown or has a value it cannot take."""
        for key in changes:
            if key not in _LIMITS:
                known = ", ".join(_LIMITS)
                raise ValueError(f"Unknown tracking option {key!r}; the options are: {known}.")
        return dataclasses.replace(self, **changes)


def _check(key: str, value: Any) -> None:
    kind, lowest, lowest_allowed, meaning = _LIMITS[key]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    valid = is_number and (kind is float or isinstance(value, int)) and math.isfinite(value)
    if valid:
        valid = value >= lowest if lowest_allowed else value > lowest
    if not valid:
        raise ValueError(f"The tracking option {key!r} must be {meaning}, not {value!r}.")
