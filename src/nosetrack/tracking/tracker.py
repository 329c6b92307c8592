"""A tracker, one per stream: faces that keep their ids from frame to frame, and a steady nose for each.

Following MediaPipe's face tracking graph (face_landmark_front_cpu.pbtxt): each tracked face's next crop comes
from its current mesh (levelled on the eyes, sized by the landmarks), and the built-in model runs FaceMesh
alone on it, once per face. The face detector runs only when no face is tracked, when FaceMesh's presence
score says a tracked face is gone, and on a schedule (to pick up faces that enter). A detection that overlaps
a tracked face is that face. Any other model (a user's spec model, without a mesh) runs its own `predict` on
every frame; its faces get the same ids and filters.

A scene cut (the whole picture changes at once, `scene.SceneCuts`) ends every track. A mesh that jumps in
place or size beyond what a frame's motion allows has lost its face (often to a part of another): the
detector looks at once, and a face it finds there that is not the lost one's size gets a new id.
Re-detection looks at the turned views as the photo pipeline does (a face that appears on its side), and
each face's mesh pass may look at the mirrored crop now and then (`mirror_every`), carrying that correction
in between.

The tracker holds only the stream's state; the model is lent to it for each frame, so a server's streams
share the worker's model instances.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from ..models.base import Box, Face, Model, Prediction
from ..models.geometry import RotatedCrop
from ..models.nose_tracker import (
    MIN_MESH_SCORE,
    MeshedFace,
    NoseTrackerOptions,
    quarters_of,
    turned_by_quarters,
)
from .one_euro import OneEuroFilter
from .options import TrackerOptions
from .scene import SceneCuts

# A spec model without boxes gives no face size; its noses are filtered as if faces were this share of the
# image's short side.
NOMINAL_FACE_SHARE = 0.25
# A nose this far (in face sizes) from a track's last nose is another face.
MAX_NOSE_JUMP = 0.5
# A followed face whose nose lands further than this (in face sizes) from where its motion was taking it, or
# whose size changes by more than this factor, from one frame to the next, is another face; a lost face found
# again may not have changed size by more than that factor either. A head shaken hard (3 Hz, a third of its
# size each way) strays about 0.12 face sizes a frame at 30 fps from where its last speed would take it.
MAX_SURPRISE = 0.25
MAX_SIZE_JUMP = 1.5
# Both jumps are allowed per this much time between frames; a longer gap (dropped frames) allows more.
JUMP_INTERVAL = 2.0 / 30.0
# While nothing is tracked and the upright views find nothing, the turned views are searched one a frame in
# this order: a face on its side one way, the other way, then upside down.
TURNED_VIEWS = (1, 3, 2)
# A face the detector finds is meshed the right way up: when FaceMesh is less sure than this of it, it also
# looks at the crop turned by each quarter and keeps the surest (as the photo pipeline does).
DOUBTED_BELOW = NoseTrackerOptions().doubt_below
# Two faces in one frame whose boxes overlap more than this (intersection over union) are one face seen
# twice; MediaPipe's tracking graph associates its regions with the same threshold.
DUPLICATE_OVERLAP = 0.5


@dataclass(frozen=True)
class TrackedFace:
    """One face in one frame: its id in the stream, the smoothed face (`face`) and this frame's own (`raw`).

    `tracked` is True when the detector did not run for this face on this frame (its crop came from the last
    frame's mesh). `age` is how long its id has lived, in seconds: from the frame it was first seen to this.
    """

    id: int
    face: Face
    raw: Face
    tracked: bool
    age: float = 0.0


@dataclass(frozen=True)
class TrackedFrame:
    """Every face in one frame, the most prominent first, whether the detector ran on it, and whether it
    starts a new shot (a scene cut: no id from before it goes on)."""

    width: int
    height: int
    timestamp: float
    faces: list[TrackedFace]
    detector_ran: bool
    scene_cut: bool = False

    @property
    def prediction(self) -> Prediction:
        """The smoothed faces as a `Prediction` (for drawing, the recent frames, evaluation)."""
        return Prediction(self.width, self.height, [tracked.face for tracked in self.faces])

    def at_full_size(self, factor: int, width: int, height: int) -> TrackedFrame:
        """This frame, tracked on an image decoded at 1/`factor` size, in the full image's pixels."""
        if factor == 1:
            return self
        smoothed = self.prediction.at_full_size(factor, width, height).faces
        raw = Prediction(self.width, self.height, [t.raw for t in self.faces])
        raw_faces = raw.at_full_size(factor, width, height).faces
        faces = [
            replace(tracked, face=face, raw=raw_face)
            for tracked, face, raw_face in zip(self.faces, smoothed, raw_faces, strict=True)
        ]
        return replace(self, width=width, height=height, faces=faces)


@runtime_checkable
class CropTracking(Protocol):
    """A model that can follow faces from crop to crop (the built-in `NoseTracker`)."""

    def detect_crops(self, image: np.ndarray, quarter_turns: int = 0) -> list[RotatedCrop]: ...

    def mesh_on_crop(self, image: np.ndarray, crop: RotatedCrop, mirror: bool = False) -> MeshedFace: ...


class _Track:
    """What the tracker remembers of one face."""

    def __init__(self, track_id: int, options: TrackerOptions, born: float) -> None:
        self.id = track_id
        self.born = born
        # What the mirrored pass last added to the nose, in the face's crop frame (crop sides), and how many
        # mesh passes went without it since.
        self.mirror_offset: np.ndarray | None = None
        self.passes_since_mirror = 0
        self.nose_filter = OneEuroFilter(options.min_cutoff, options.beta, options.d_cutoff)
        self.box_filter = OneEuroFilter(options.min_cutoff, options.beta, options.d_cutoff)
        self.crop: RotatedCrop | None = None
        self.raw: Face | None = None
        self.last_seen = 0.0
        self.velocity = np.zeros(2)  # of the raw nose, pixels per second

    def smooth(self, raw: Face, timestamp: float, nominal_size: float) -> Face:
        """`raw` through this face's filters; remembers it as the face's latest sighting."""
        if self.raw is not None and timestamp > self.last_seen:
            step = np.array([raw.nose_x - self.raw.nose_x, raw.nose_y - self.raw.nose_y])
            self.velocity = step / (timestamp - self.last_seen)
        self.raw, self.last_seen = raw, timestamp
        size = face_size(raw, nominal_size)
        nose = self.nose_filter(np.array([raw.nose_x, raw.nose_y]), timestamp, size)
        box = raw.box
        if box is not None:
            x, y, width, height = self.box_filter(
                np.array([box.x, box.y, box.width, box.height]), timestamp, size
            )
            box = Box(float(x), float(y), float(width), float(height))
        return replace(raw, nose_x=float(nose[0]), nose_y=float(nose[1]), box=box)

    def crop_ahead(self, timestamp: float) -> RotatedCrop | None:
        """The crop the last mesh implied, moved on at the face's last speed to where it should be now."""
        if self.crop is None:
            return None
        shift = self.velocity * (timestamp - self.last_seen)
        return replace(
            self.crop, centre_x=self.crop.centre_x + shift[0], centre_y=self.crop.centre_y + shift[1]
        )

    def distance_from_expected(self, face: Face, timestamp: float) -> float:
        """How far `face`'s nose is from where this face was heading (its last nose and speed)."""
        if self.raw is None:
            return 0.0
        expected = np.array([self.raw.nose_x, self.raw.nose_y]) + self.velocity * (timestamp - self.last_seen)
        return float(np.hypot(face.nose_x - expected[0], face.nose_y - expected[1]))

    def jumped(self, face: Face, timestamp: float) -> bool:
        """Whether `face` lies too far from where this face was heading, or is too much larger or smaller
        than it was, to be the same face now (another face came into its crop)."""
        if self.raw is None or self.raw.box is None or face.box is None:
            return False
        reach = max(1.0, (timestamp - self.last_seen) / JUMP_INTERVAL)
        size, last = face_size(face, 0.0), face_size(self.raw, 0.0)
        resized = abs(np.log(size / last)) > reach * np.log(MAX_SIZE_JUMP)
        moved = self.distance_from_expected(face, timestamp) > reach * MAX_SURPRISE * max(size, last)
        return resized or moved

    def wants_mirror(self, every: int) -> bool:
        """Whether this face's next mesh pass should also look at the mirrored crop."""
        return bool(every) and (self.mirror_offset is None or self.passes_since_mirror + 1 >= every)

    def corrected(self, meshed: MeshedFace, mirrored: bool) -> Face:
        """The face of a mesh pass with the mirrored pass's correction: measured now when `mirrored`, else
        the last one carried over (turned and scaled with the face's crop)."""
        crop, single = meshed.crop, meshed.single_nose
        if crop is None or single is None:
            return meshed.face
        cos, sin = np.cos(crop.angle), np.sin(crop.angle)
        turn = np.array([[cos, -sin], [sin, cos]])
        if mirrored:
            step = np.array([meshed.face.nose_x - single[0], meshed.face.nose_y - single[1]])
            self.mirror_offset = turn.T @ step / crop.size
            self.passes_since_mirror = 0
            return meshed.face
        self.passes_since_mirror += 1
        if self.mirror_offset is None:
            return meshed.face
        nose = np.array(single) + turn @ self.mirror_offset * crop.size
        return replace(meshed.face, nose_x=float(nose[0]), nose_y=float(nose[1]))

    def retune(self, options: TrackerOptions) -> None:
        for one_euro in (self.nose_filter, self.box_filter):
            one_euro.min_cutoff, one_euro.beta, one_euro.d_cutoff = (
                options.min_cutoff,
                options.beta,
                options.d_cutoff,
            )


def same_face(face: Face, other: Face, nominal_size: float) -> bool:
    """Whether two sightings are one face: noses closer than `MAX_NOSE_JUMP` times the larger face's size
    (its box's longer side; `nominal_size` without boxes)."""
    size = max(face_size(face, nominal_size), face_size(other, nominal_size))
    return nose_distance(face, other) < MAX_NOSE_JUMP * size


def similar_size(face: Face, other: Face) -> bool:
    """Whether two sightings' sizes are within `MAX_SIZE_JUMP` of each other (True without boxes)."""
    if face.box is None or other.box is None:
        return True
    return abs(np.log(face_size(face, 0.0) / face_size(other, 0.0))) <= np.log(MAX_SIZE_JUMP)


def face_size(face: Face, nominal_size: float) -> float:
    return max(face.box.width, face.box.height) if face.box else nominal_size


def seen_twice(face: Face, others: list[Face]) -> bool:
    """Whether `face` is one of `others` seen again in the same frame (their boxes overlap that much)."""
    return any(overlap(face.box, other.box) > DUPLICATE_OVERLAP for other in others if face.box and other.box)


def square(crop: RotatedCrop) -> Box:
    """The crop's square, unturned: enough to tell whether two crops hold the same face."""
    return Box(crop.centre_x - crop.size / 2, crop.centre_y - crop.size / 2, crop.size, crop.size)


def overlap(box: Box, other: Box) -> float:
    """Intersection over union of two boxes."""
    width = min(box.x + box.width, other.x + other.width) - max(box.x, other.x)
    height = min(box.y + box.height, other.y + other.height) - max(box.y, other.y)
    common = max(0.0, width) * max(0.0, height)
    return common / (box.area + other.area - common) if common else 0.0


def nose_distance(face: Face, other: Face) -> float:
    return float(np.hypot(face.nose_x - other.nose_x, face.nose_y - other.nose_y))


class Tracker:
    """Follows the faces of one stream; `update` it with each frame, in time order."""

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._timestamp: float | None = None
        self._last_detection: tuple[int, float] | None = None  # (frame number, timestamp)
        self._frames = 0
        self._cuts = SceneCuts(self.options.cut_threshold)
        self._turned_looks = 0

    def update(self, model: Model, image: np.ndarray, timestamp: float) -> TrackedFrame:
        """The faces in `image` (BGR), taken at `timestamp` seconds, run on `model` (lent for this call)."""
        if self._timestamp is not None and timestamp < self._timestamp:
            raise ValueError(
                f"Frame timestamps must not go backwards: {timestamp} s came after {self._timestamp} s."
            )
        self._timestamp = timestamp
        self._frames += 1
        for track in self._tracks:
            track.retune(self.options)
        self._cuts.threshold = self.options.cut_threshold
        scene_cut = self._cuts.is_cut(image)
        if scene_cut:  # a new shot: no id goes on, and the detector looks at it at once
            self._tracks = []
            self._last_detection = None
        height, width = image.shape[:2]
        nominal_size = NOMINAL_FACE_SHARE * min(width, height)
        if isinstance(model, CropTracking):
            sightings, detector_ran = self._follow_crops(model, image, timestamp)
        else:
            faces_now = model.predict(image).faces
            matched = self._match(faces_now, self._tracks, nominal_size, timestamp)
            sightings = [(track, face, False) for track, face in matched]
            detector_ran = True
        faces = [
            TrackedFace(
                track.id, track.smooth(raw, timestamp, nominal_size), raw, tracked, timestamp - track.born
            )
            for track, raw, tracked in sightings
        ]
        seen = {track.id for track, _, _ in sightings}
        self._tracks = [
            track
            for track in self._tracks
            if track.id in seen or timestamp - track.last_seen <= self.options.grace_seconds
        ]
        faces.sort(key=lambda tracked: tracked.face.box.area if tracked.face.box else 0.0, reverse=True)
        return TrackedFrame(width, height, timestamp, faces, detector_ran, scene_cut)

    def _new_track(self, timestamp: float) -> _Track:
        track = _Track(self._next_id, self.options, timestamp)
        self._next_id += 1
        self._tracks.append(track)
        return track

    def _match(
        self, faces: list[Face], candidates: list[_Track], nominal_size: float, timestamp: float
    ) -> list[tuple[_Track, Face]]:
        """Each face with its track: the nearest of `candidates` whose last sighting was the same face,
        else a new track."""
        unclaimed = [track for track in candidates if track.raw is not None]
        matched = []
        for face in faces:
            same = [
                t
                for t in unclaimed
                if t.raw and same_face(face, t.raw, nominal_size) and similar_size(face, t.raw)
            ]
            if same:
                track = min(same, key=lambda t: nose_distance(face, t.raw))
                unclaimed.remove(track)
            else:
                track = self._new_track(timestamp)
            matched.append((track, face))
        return matched

    def _detection_due(self, timestamp: float) -> bool:
        if self._last_detection is None or any(track.crop is None for track in self._tracks):
            return True  # nothing tracked yet, or a face lost within its grace period, to be found again
        frame, at = self._last_detection
        frames, seconds = self.options.redetect_frames, self.options.redetect_seconds
        return bool(frames and self._frames - frame >= frames) or bool(seconds and timestamp - at >= seconds)

    def _follow_crops(
        self, model: CropTracking, image: np.ndarray, timestamp: float
    ) -> tuple[list[tuple[_Track, Face, bool]], bool]:
        """One mesh pass per tracked face; the detector when a face is lost, none is tracked, or it is due."""
        followed: list[_Sighting] = []
        for track in list(self._tracks):
            crop = track.crop_ahead(timestamp)
            if crop is None:
                continue
            mirrored = track.wants_mirror(self.options.mirror_every)
            meshed = model.mesh_on_crop(image, crop, mirror=mirrored)
            if meshed.presence < MIN_MESH_SCORE or track.jumped(meshed.face, timestamp):
                # Gone, or another face came into its crop (a part of it, often): the detector looks at once.
                track.crop = None
                continue
            followed.append(_Sighting(track, meshed, track.corrected(meshed, mirrored)))
        followed = self._without_duplicates(followed, timestamp)
        for sighting in followed:
            sighting.track.crop = sighting.meshed.next_crop
        sightings = [(sighting.track, sighting.face, True) for sighting in followed]
        if not followed or self._detection_due(timestamp):
            self._last_detection = (self._frames, timestamp)
            found = self._found_anew(model, image, followed, timestamp)
            return sightings + [(track, face, False) for track, face in found], True
        return sightings, False

    def _without_duplicates(self, followed: list[_Sighting], timestamp: float) -> list[_Sighting]:
        """Two tracks that came to follow one face (one face passed in front of the other): the face stays
        with the track it fits best (nearest to where that track was heading); the other has lost its face."""
        kept: list[_Sighting] = []
        by_fit = sorted(followed, key=lambda seen: seen.track.distance_from_expected(seen.face, timestamp))
        for sighting in by_fit:
            if seen_twice(sighting.face, [other.face for other in kept]):
                sighting.track.crop = None
            else:
                kept.append(sighting)
        return kept

    def _crops_to_look_at(
        self, model: CropTracking, image: np.ndarray, followed: list[_Sighting]
    ) -> list[RotatedCrop]:
        """The detector's crops, in the views the photo pipeline looks at: the upright ones; the views turned
        the way followed faces lie (a phone held sideways: its other faces lie that way too); and, when
        nothing is followed and the upright views find nothing, one turned view a frame, in turn."""
        crops = model.detect_crops(image)
        rolls = [sighting.meshed.next_crop.angle for sighting in followed]
        for quarters in quarters_of(rolls):
            crops += model.detect_crops(image, quarters)
        if not followed and not crops:
            quarters = TURNED_VIEWS[self._turned_looks % len(TURNED_VIEWS)]
            self._turned_looks += 1
            crops += model.detect_crops(image, quarters)
        return crops

    def _right_way_up(
        self, model: CropTracking, image: np.ndarray, crop: RotatedCrop, mirrored: bool
    ) -> MeshedFace:
        """A new face's mesh: on the detector's crop, or on that crop turned by the quarter FaceMesh is
        surest of when it doubts the first (the detector may take a face on its side for an upright one)."""
        meshed = model.mesh_on_crop(image, crop, mirror=mirrored)
        if meshed.presence >= DOUBTED_BELOW:
            return meshed
        turned = (model.mesh_on_crop(image, turned_by_quarters(crop, q), mirror=mirrored) for q in (1, 2, 3))
        return max([meshed, *turned], key=lambda candidate: candidate.presence)

    def _found_anew(
        self,
        model: CropTracking,
        image: np.ndarray,
        followed: list[_Sighting],
        timestamp: float,
    ) -> list[tuple[_Track, Face]]:
        """Faces the detector finds that no track follows now, each with its track: a lost face found again
        near where it was keeps its id."""
        meshes: list[MeshedFace] = []
        followed_crops = [square(sighting.meshed.next_crop) for sighting in followed]
        mirrored = self.options.mirror_every > 0
        for crop in self._crops_to_look_at(model, image, followed):
            if any(overlap(square(crop), other) > DUPLICATE_OVERLAP for other in followed_crops):
                continue  # a face already followed, seen again by the detector: no mesh needed
            meshed = self._right_way_up(model, image, crop, mirrored)
            known = [*(sighting.face for sighting in followed), *(m.face for m in meshes)]
            if meshed.presence >= MIN_MESH_SCORE and not seen_twice(meshed.face, known):
                meshes.append(meshed)
        lost = [track for track in self._tracks if track.crop is None]
        found = self._match([meshed.face for meshed in meshes], lost, 0.0, timestamp)
        faces = []
        for (track, _), meshed in zip(found, meshes, strict=True):
            track.crop = meshed.next_crop
            faces.append((track, track.corrected(meshed, mirrored)))
        return faces


@dataclass
class _Sighting:
    """A tracked face's mesh pass on this frame, and the face it gives (with the mirrored correction)."""

    track: _Track
    meshed: MeshedFace
    face: Face
