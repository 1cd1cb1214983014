"""Which face of each frame to lip-sync: one person, chosen once and then followed.

Detectors rank a frame's faces by score, and with two people the top one changes from frame to
frame; the references take it anyway. Here a `FaceChoice` picks the person where a face first
appears (the largest, the n-th from the left, or the one under a point), and a `FaceTracker`
follows every face from frame to frame by position and size, one detection per track, so the
chosen person stays chosen while others move past them. The person is chosen again, by the same
rule, after a cut or once they have been out of sight for `LOST_AFTER` frames; within a shot, a
face known to be someone else (seen beside them) is never taken for them.
"""
import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple, Union

import cv2
import numpy as np

from ..utils.boxes import Mouth, XYXYBox
from ..utils.errors import UserError

# Frames a tracked face may go unseen (hidden, missed, out of the picture) before its track ends.
LOST_AFTER = 25
# A face seen once and in none of the next this many detected frames was a false detection.
TENTATIVE_UPDATES = 3
# The faces of a frame followed at most, best ranked first (a noisy detector's hundreds of boxes
# must not slow every frame down).
MAX_FACES = 64
# A detection continues a track when its size is within this ratio of the track's and its
# centre within REACH face sizes of where the track was heading, REACH growing with the frames
# between the two (REACH_PER_FRAME a frame, at most MAX_REACH).
MAX_SIZE_RATIO = 1.5
REACH, REACH_PER_FRAME, MAX_REACH = 0.5, 0.15, 2.0
PREDICT_FRAMES = 10  # how far ahead a track's velocity is trusted
# While the chosen person is out of sight, a new face takes their place only once it has been
# seen this many times (a detector's false positive rarely lasts that long); and faces count as
# someone else only once seen beside a chosen person seen that often.
CONFIRMED = 3
# The chosen person and everyone seen with them unseen this many detected frames running, while
# other faces are: a cut the colours did not show (or everyone left at once).
NEW_SHOT_FRAMES = 2
# A point picks the face whose box, grown by this share of its size on each side, holds it.
POINT_MARGIN = 0.2
# Consecutive frames are a cut when their colour histograms are this far apart (Bhattacharyya
# distance, 0-1) and their grey thumbnails correlate less than this. Measured on scikit-image's
# photographs: two scenes 0.56-0.98 and at most 0.30; one scene panned or zoomed by a tenth at
# most 0.16 (any correlation); brightened 1.8 times or white balance shifted by 15%, up to 1.0
# but correlations of at least 0.87. (Two grey scenes show no colour change: the faces decide.)
CUT_COLOURS, CUT_LAYOUT = 0.4, 0.6

Selection = Union[str, int, Tuple[float, float]]
SMALL_FACES_HINT = "a larger --det_max_size, or 0, finds smaller faces"


class FaceChoiceError(UserError, ValueError):
    """The chosen face is not where the choice says; the message says what was found."""


class Sighting(NamedTuple):
    """The chosen person's box in one frame, and which of their appearances it belongs to (a
    new one each time they are chosen again): boxes of one appearance may be blended, boxes
    of two never are. `mouth`: where the detector marked their mouth (None: it marks none)."""
    box: XYXYBox
    appearance: int
    mouth: Optional[Mouth] = None


Mouths = Optional[Sequence[Optional[Mouth]]]  # per face of a frame; None: no detector marks


def _centre(box: XYXYBox) -> Tuple[float, float]:
    return (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2


def _size(box: XYXYBox) -> float:
    return math.sqrt(max(box.x2 - box.x1, 1) * max(box.y2 - box.y1, 1))


@dataclass(frozen=True)
class FaceChoice:
    """Which face is the person to lip-sync, among the faces of the frame where one is chosen:
    `rule` "largest", "index" (the `index`-th from the left, by centre, from 0) or "point" (the
    face at `point`, (x, y) in the frame the detector sees). `shown` is the choice as the user
    gave it, for messages."""
    rule: str = "largest"
    index: int = 0
    point: Tuple[float, float] = (0.0, 0.0)
    shown: str = "largest"

    @classmethod
    def of(cls, value: Selection,
           to_frame: Callable[[float, float], Tuple[float, float]] = lambda x, y: (x, y)
           ) -> "FaceChoice":
        """From a value `ppgan.utils.checks.face_select` accepted; `to_frame` maps a point of
        the input into the preprocessed frame."""
        if value == "largest":
            return cls()
        if isinstance(value, int):
            return cls("index", index=value, shown=str(value))
        x, y = value
        return cls("point", point=to_frame(x, y), shown=f"{x:g},{y:g}")

    def pick(self, faces: Sequence[XYXYBox], allowed: Sequence[bool]) -> Optional[int]:
        """The index in `faces` of the person by this rule, or None. Faces not `allowed` (known
        to be someone else) are never picked; the largest is the largest of the others, while
        an index and a point count every face, as the user sees them."""
        if self.rule == "largest":
            sizes = [(_size(face), i) for i, face in enumerate(faces) if allowed[i]]
            return max(sizes)[1] if sizes else None
        if self.rule == "index":
            order = sorted(range(len(faces)), key=lambda i: _centre(faces[i])[0])
            chosen = order[self.index] if self.index < len(order) else None
        else:
            chosen = self._under_point(faces)
        return chosen if chosen is not None and allowed[chosen] else None

    def _under_point(self, faces: Sequence[XYXYBox]) -> Optional[int]:
        x, y = self.point
        holding = []
        for i, face in enumerate(faces):
            mx, my = POINT_MARGIN * (face.x2 - face.x1), POINT_MARGIN * (face.y2 - face.y1)
            if face.x1 - mx <= x <= face.x2 + mx and face.y1 - my <= y <= face.y2 + my:
                cx, cy = _centre(face)
                holding.append((math.hypot(x - cx, y - cy) / _size(face), i))
        return min(holding)[1] if holding else None

    def refused(self, frame: int, faces: Sequence[XYXYBox]) -> FaceChoiceError:
        """The error for a point no face of the first frame with faces is under."""
        return FaceChoiceError(
            f"--face_select {self.shown}: no face in frame {frame} is at that point (it shows "
            f"{len(faces)} face{'s' if len(faces) > 1 else ''}; point at one, or give an index "
            f"from the left or 'largest'; {SMALL_FACES_HINT})")

    def nobody(self, most_faces: int) -> FaceChoiceError:
        """The error for a choice no frame allowed (an index past the faces ever seen at once)."""
        return FaceChoiceError(f"--face_select {self.shown}: no frame shows {self.index + 1} faces "
                               f"(at most {most_faces}; faces count from 0, from the left; "
                               f"{SMALL_FACES_HINT})")


@dataclass
class _Track:
    box: XYXYBox
    seen: int  # the frame it was last seen in
    update: int  # the tracker's update that was in
    hits: int = 1
    velocity: Tuple[float, float] = (0.0, 0.0)  # of the centre, pixels per frame

    def continue_with(self, face: XYXYBox, frame: int, update: int) -> None:
        gap = max(frame - self.seen, 1)
        (cx, cy), (fx, fy) = _centre(self.box), _centre(face)
        step = ((fx - cx) / gap, (fy - cy) / gap)
        self.velocity = step if self.hits == 1 else tuple(
            (v + s) / 2 for v, s in zip(self.velocity, step))
        self.box, self.seen, self.update, self.hits = face, frame, update, self.hits + 1

    def lost(self, frame: int, update: int, lost_after: int, chosen: bool) -> bool:
        """Unseen too long, or (unless it is the chosen person's) seen only once, long ago."""
        return (frame - self.seen > lost_after or (
            not chosen and self.hits == 1 and update - self.update > TENTATIVE_UPDATES))


def _continuation_costs(tracks: Sequence[_Track], faces: Sequence[XYXYBox],
                        frame: int) -> np.ndarray:
    """(tracks, faces): how well each face in `frame` continues each track (lower is better:
    the distance from where the track was heading, in face sizes, plus the size change), inf
    where it cannot (another size, or out of reach)."""
    if not tracks or not faces:
        return np.full((len(tracks), len(faces)), np.inf)
    boxes = np.array([t.box for t in tracks], np.float64)
    found = np.array(faces, np.float64)
    sizes, face_sizes = (np.sqrt(np.maximum(b[:, 2] - b[:, 0], 1) * np.maximum(b[:, 3] - b[:, 1], 1))
                         for b in (boxes, found))
    gaps = frame - np.array([t.seen for t in tracks], np.float64)
    ahead = np.minimum(gaps, PREDICT_FRAMES)[:, None] * np.array([t.velocity for t in tracks])
    heading = (boxes[:, :2] + boxes[:, 2:]) / 2 + ahead
    centres = (found[:, :2] + found[:, 2:]) / 2
    distance = np.linalg.norm(centres[None] - heading[:, None], axis=2) / sizes[:, None]
    size_change = np.abs(np.log(face_sizes[None] / sizes[:, None]))
    reach = np.minimum(REACH + REACH_PER_FRAME * (gaps - 1), MAX_REACH)[:, None]
    possible = (size_change <= math.log(MAX_SIZE_RATIO)) & (distance <= reach)
    return np.where(possible, distance + size_change, np.inf)


@dataclass
class FaceTracker:
    """Follows the person `choice` picks through a video's detected frames, given in order
    (frames may be skipped: between key frames, or where nothing was detected)."""
    choice: FaceChoice
    lost_after: int = LOST_AFTER
    _tracks: Dict[int, _Track] = field(default_factory=dict)
    _next_track: int = 0
    _target: Optional[int] = None
    _others: Set[int] = field(default_factory=set)  # tracks seen beside the chosen person
    _appearance: int = -1
    _chosen_once: bool = False
    _last_seen_with: Set[int] = field(default_factory=set)  # the tracks live when last seen
    _unseen_frames: int = 0  # detected frames since, in which none of those was seen
    _updates: int = 0
    most_faces: int = 0

    def copy(self) -> "FaceTracker":
        return copy.deepcopy(self)

    def update(self, frame: int, faces: Sequence[XYXYBox], cut: bool = False,
               mouths: Mouths = None) -> Optional[Sighting]:
        """The chosen person's box in `frame`, whose detected `faces` are given (and their
        `mouths`, carried into the sighting), or None where they are not seen. `cut`: the
        frame starts a new shot (everyone is chosen afresh)."""
        faces = list(faces[:MAX_FACES])
        self.most_faces = max(self.most_faces, len(faces))
        self._updates += 1
        if cut:
            self._forget_everyone()
        self._drop_lost(frame)
        tracks = self._assign(frame, faces)
        if self._new_shot(tracks, faces):
            self._forget_everyone()
            tracks = self._assign(frame, faces)
        if self._target not in tracks:
            self._choose(frame, faces, tracks)
        if self._target not in tracks:
            return None
        if self._tracks[self._target].hits >= CONFIRMED:  # not beside a false detection
            self._others.update(t for t in tracks if t != self._target)
        self._last_seen_with = set(self._tracks)
        self._unseen_frames = 0
        chosen = tracks.index(self._target)
        return Sighting(faces[chosen], self._appearance, None if mouths is None else mouths[chosen])

    def _assign(self, frame: int, faces: Sequence[XYXYBox]) -> List[int]:
        """The track of each face: the closest pairs first, one face per track; a face no track
        can take starts one."""
        ids = list(self._tracks)
        costs = _continuation_costs([self._tracks[t] for t in ids], faces, frame)
        rows, cols = np.nonzero(np.isfinite(costs))
        tracks: List[Optional[int]] = [None] * len(faces)
        taken: Set[int] = set()
        for k in np.argsort(costs[rows, cols], kind="stable"):
            track_id, i = ids[rows[k]], cols[k]
            if tracks[i] is None and track_id not in taken:
                tracks[i] = track_id
                taken.add(track_id)
        for i, face in enumerate(faces):
            if tracks[i] is None:
                tracks[i], self._next_track = self._next_track, self._next_track + 1
                self._tracks[tracks[i]] = _Track(face, frame, self._updates)
            else:
                self._tracks[tracks[i]].continue_with(face, frame, self._updates)
        return tracks

    def _new_shot(self, tracks: List[int], faces: Sequence[XYXYBox]) -> bool:
        """Whether the chosen person and everyone seen with them have gone at once for
        NEW_SHOT_FRAMES detected frames, while other faces are in view."""
        if self._target is None or not faces or self._last_seen_with & set(tracks):
            self._unseen_frames = 0
            return False
        self._unseen_frames += 1
        return self._unseen_frames >= NEW_SHOT_FRAMES

    def _drop_lost(self, frame: int) -> None:
        for track_id in [t for t, track in self._tracks.items()
                         if track.lost(frame, self._updates, self.lost_after, t == self._target)]:
            del self._tracks[track_id]
            self._others.discard(track_id)
            if track_id == self._target:
                self._target = None

    def _forget_everyone(self) -> None:
        self._tracks.clear()
        self._others.clear()
        self._last_seen_with.clear()
        self._target, self._unseen_frames = None, 0

    def _choose(self, frame: int, faces: Sequence[XYXYBox], tracks: List[int]) -> None:
        """Choose the person among `faces` by the rule: when nobody is chosen, or while the
        chosen one is out of sight, from faces seen often enough not to be a false detection."""
        if not faces:
            return
        allowed = [t not in self._others and t != self._target and
                   (self._target is None or self._tracks[t].hits >= CONFIRMED) for t in tracks]
        chosen = self.choice.pick(faces, allowed)
        if chosen is None and not self._chosen_once and self.choice.rule == "point":
            raise self.choice.refused(frame, faces)
        if chosen is not None:
            self._target, self._chosen_once = tracks[chosen], True
            self._appearance += 1

    def finish(self) -> None:
        """Call after the last frame: an error if faces were found but the choice took none."""
        if not self._chosen_once and self.most_faces:
            raise self.choice.nobody(self.most_faces)


class TopRanked:
    """The references' choice: each frame's top-ranked face, whoever it is (one appearance)."""

    def copy(self) -> "TopRanked":
        return self

    def update(self, frame: int, faces: Sequence[XYXYBox], cut: bool = False,
               mouths: Mouths = None) -> Optional[Sighting]:
        if not faces:
            return None
        return Sighting(faces[0], 0, None if mouths is None else mouths[0])

    def finish(self) -> None:
        pass


def frame_signature(frame: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """What `is_cut` compares: a BGR frame's hue-saturation histogram (normalised) and its
    grey 32x18 thumbnail (zero mean, unit length)."""
    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
    histogram = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    histogram /= max(float(histogram.sum()), 1.0)
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    thumbnail = cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    thumbnail -= thumbnail.mean()
    return histogram, thumbnail / max(float(np.linalg.norm(thumbnail)), 1e-6)


def is_cut(before: Optional[Tuple[np.ndarray, np.ndarray]],
           after: Tuple[np.ndarray, np.ndarray]) -> bool:
    """Whether two consecutive frames differ as two scenes do: other colours (which a pan or
    people moving barely change) and another layout of light and dark (which a flash or a
    white-balance step keep)."""
    if before is None:
        return False
    colours = cv2.compareHist(before[0], after[0], cv2.HISTCMP_BHATTACHARYYA)
    return colours > CUT_COLOURS and float(before[1] @ after[1]) < CUT_LAYOUT
