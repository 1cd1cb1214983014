"""One face box per video frame: batched detection, gap filling, padding and smoothing.

A face's mouth mark (from detectors with landmarks) travels with its box: it is interpolated
between key frames with it, filled and smoothed as boxes are (`fill_mouths`, `smooth_mouths`).
"""
import logging
from dataclasses import dataclass, field
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .face_detection import FaceAlignment
from .face_track import FaceChoice, FaceTracker, Sighting, TopRanked, frame_signature, is_cut
from ..utils.boxes import Mouth, XYXYBox
from ..utils.errors import UserError
from ..utils.read_ahead import read_ahead

logger = logging.getLogger(__name__)


class NoFaceError(UserError, ValueError):
    """No usable face was found; the message says where."""


class MissingFaceError(NoFaceError):
    """A frame without a face where every frame must show one (`strict`); `frame` is its index.
    `others`: the frame shows faces, but not the chosen one."""

    def __init__(self, frame: int, others: bool = False):
        super().__init__(f"the chosen face is not in frame {frame}" if others
                         else f"no face in frame {frame}")
        self.frame = frame


def _is_out_of_memory(err: Exception) -> bool:
    # Paddle reports device OOM as MemoryError (ResourceExhausted) or a RuntimeError naming memory.
    return isinstance(err, MemoryError) or "memory" in str(err).lower()


def _moved(a: Optional[XYXYBox], b: Optional[XYXYBox], tolerance: float) -> bool:
    """Whether two boxes differ by more than `tolerance` of the face's size (or one is missing)."""
    if a is None or b is None:
        return True
    size = max(a.x2 - a.x1, a.y2 - a.y1, b.x2 - b.x1, b.y2 - b.y1, 1)
    return max(abs(p - q) for p, q in zip(a, b)) > tolerance * size


# One detected face: its box and its mouth (None: the detector marks no mouth).
Face = Tuple[XYXYBox, Optional[Mouth]]


def _interpolate(a: XYXYBox, b: XYXYBox, steps: int) -> List[XYXYBox]:
    """The `steps - 1` boxes strictly between a and b, linearly."""
    return [XYXYBox(*(int(round(p + (q - p) * k / steps)) for p, q in zip(a, b)))
            for k in range(1, steps)]


def _interpolate_sightings(a: Sighting, b: Sighting, steps: int) -> List[Sighting]:
    """The `steps - 1` sightings strictly between a and b (of b's appearance), linearly; their
    mouths too where both ends have one."""
    boxes = _interpolate(a.box, b.box, steps)
    if a.mouth is None or b.mouth is None:
        return [Sighting(box, b.appearance) for box in boxes]
    return [Sighting(box, b.appearance,
                     Mouth(*(p + (q - p) * k / steps for p, q in zip(a.mouth, b.mouth))))
            for k, box in enumerate(boxes, 1)]


def _covers_pixels(box: XYXYBox, width: float, height: float) -> bool:
    """Whether `box` holds at least one pixel of a `width` x `height` frame. Detections that
    round to no width or height, or lie beyond the frame's edge, are no face to lip-sync (the
    references crash on their empty crop): they are dropped as the detector's noise."""
    x1, y1, x2, y2 = box
    return max(x1, 0) < min(x2, width) and max(y1, 0) < min(y2, height)


@dataclass
class _Run:
    """One pass of `BoxDetector.track`: the choice's state and what it has settled so far."""
    picker: Union[FaceTracker, TopRanked]
    out: List[Optional[Sighting]] = field(default_factory=list)
    cuts: List[bool] = field(default_factory=list)  # per frame read: whether it starts a shot
    signature: Optional[tuple] = None  # the last frame's, see `frame_signature`
    anchor: Optional[Sighting] = None  # the last key frame's

    def note_shot(self, small: np.ndarray) -> None:
        signature = frame_signature(small)
        self.cuts.append(is_cut(self.signature, signature))
        self.signature = signature

    def cut_at(self, frame: int) -> bool:
        return frame < len(self.cuts) and self.cuts[frame]

    def settle(self, frame: int, faces: List[Face]) -> Optional[Sighting]:
        return self.picker.update(frame, [box for box, _ in faces], self.cut_at(frame),
                                  [mouth for _, mouth in faces])


class BoxDetector:
    """Runs a face detector over a stream of frames in batches, as cheaply as the video allows.

    `max_size` bounds the longest side of the copy the detector sees (0: full resolution, as the
    references); a key frame whose copy shows no face is detected again on a copy twice as large
    (at most the frame itself): small faces are found, and S3FD's memory, which grows with the
    pixels it sees, stays bounded whatever the resolution.
    `every`: detect every k-th frame only (key frames) and interpolate the boxes between two key
    frames, unless the face moved more than `motion_tolerance` of its size between them (or one
    has no face): then the frames between are detected too. every=1 detects every frame, as the
    references. Holds about twice `batch_size` full frames (a batch being detected, the
    next read ahead) and their key frames' intervals of small copies.
    `strict`: the references' rule that every frame must show a face. Every frame is then
    detected (whatever `every` says), a miss is retried up to the full frame, and the first frame
    still without a face raises NoFaceError at once.
    `choice`: the person to follow through the video (see `face_track`); boxes are interpolated
    only between two sightings of that person in one shot. None: each frame's top-ranked face,
    as the references.
    """

    def __init__(self, detector: FaceAlignment, batch_size: int = 16, max_size: int = 0,
                 every: int = 1, motion_tolerance: float = 0.1, strict: bool = False,
                 choice: Optional[FaceChoice] = None):
        self.detector = detector
        self.batch_size = max(1, batch_size)
        self.max_size = max_size
        self.every = 1 if strict else max(1, every)
        self.motion_tolerance = motion_tolerance
        self.strict = strict
        self.choice = choice

    def _scale(self, frame: np.ndarray, max_size: Optional[int] = None) -> float:
        max_size = self.max_size if max_size is None else max_size
        longest = max(frame.shape[:2])
        return 1.0 if max_size <= 0 or longest <= max_size else max_size / longest

    def _shrink(self, frame: np.ndarray, max_size: Optional[int] = None) -> np.ndarray:
        scale = self._scale(frame, max_size)
        if scale == 1.0:
            return frame
        height, width = frame.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

    def _detect(self, frames: List[np.ndarray], scale: float) -> List[List[Face]]:
        height, width = (side / scale for side in frames[0].shape[:2])  # the full frame's
        found = self.detector.get_all_detections_with_mouths(np.stack(frames))
        scaled = [[(XYXYBox(*(int(round(v / scale)) for v in box)),
                    None if mouth is None else mouth.scaled(1 / scale)) for box, mouth in faces]
                  for faces in found]
        return [[face for face in faces if _covers_pixels(face[0], width, height)]
                for faces in scaled]

    def _with_backoff(self, detect, items: list) -> List[List[Face]]:
        """`detect` over `items` in sub-batches, halving them whenever the device runs out of memory."""
        results: List[List[Face]] = []
        while len(results) < len(items):
            chunk = items[len(results):len(results) + self.batch_size]
            try:
                results.extend(detect(chunk))
            except (MemoryError, RuntimeError) as err:
                if not _is_out_of_memory(err):
                    raise
                if self.batch_size == 1:
                    raise NoFaceError("a single frame is too big for face detection on this "
                                      "device: use --resize_factor") from None
                self.batch_size //= 2
                logger.warning("face detection ran out of memory; batch size now %d", self.batch_size)
        return results

    def _detect_small(self, smalls: List[np.ndarray], scale: float) -> List[List[Face]]:
        return self._with_backoff(lambda chunk: self._detect(chunk, scale), smalls)

    def _detect_keys(self, keys: List[Tuple[np.ndarray, np.ndarray]],
                     scale: float) -> List[List[Face]]:
        """Faces of (full, small) key frames: on the small copies, misses again on larger ones
        (twice the size; strict: then the full frame)."""
        faces = self._detect_small([small for _, small in keys], scale)
        tried = {scale}
        for size in (2 * self.max_size, 0) if self.strict else (2 * self.max_size,):
            retry = [i for i, found in enumerate(faces) if not found]
            larger_scale = self._scale(keys[0][0], size)  # a video's frames share one size
            if not retry or larger_scale in tried:
                continue
            tried.add(larger_scale)
            larger = [self._shrink(keys[i][0], size) for i in retry]
            found = self._with_backoff(lambda chunk: self._detect(chunk, larger_scale), larger)
            for i, frame_faces in zip(retry, found):
                faces[i] = frame_faces
        return faces

    def detect(self, frames: Iterable[np.ndarray]) -> List[Optional[XYXYBox]]:
        """The face box of every frame, or None where no face was found (see `track`)."""
        return [None if sighting is None else sighting.box for sighting in self.track(frames)]

    def track(self, frames: Iterable[np.ndarray]) -> List[Optional[Sighting]]:
        """The chosen face of every frame, or None where it was not found."""
        run = _Run(TopRanked() if self.choice is None else FaceTracker(self.choice))
        queue = []  # key frames awaiting detection: (full, small, smalls of the frames before it)
        between: List[np.ndarray] = []
        scale, last = 1.0, None
        # Decoding and shrinking, a third of the work at 720p, overlap the detector: a batch of
        # key frames is read while the one before is detected. Fully beside MTCNN (cv2.dnn
        # releases the GIL), partly beside S3FD (Paddle Inference holds it through each call).
        with read_ahead(self._small_copies(frames), self.every * self.batch_size,
                        "face-detection-read") as copies:
            for index, (frame, small) in enumerate(copies):
                if frame is not None:
                    scale = self._scale(frame)  # a video's frames share one size
                if self.choice is not None:
                    run.note_shot(small)
                if index % self.every:
                    between.append(small)
                    last = (frame, small)
                    continue
                queue.append((frame, small, between))
                between, last = [], None
                if len(queue) == self.batch_size:
                    self._resolve(queue, scale, run)
                    queue = []
        if last is not None:  # the video ends between key frames: its last frame is one too
            queue.append((last[0], last[1], between[:-1]))
        if queue:
            self._resolve(queue, scale, run)
        run.picker.finish()
        return run.out

    def _small_copies(self, frames: Iterable[np.ndarray]
                      ) -> Iterator[Tuple[Optional[np.ndarray], np.ndarray]]:
        """(frame, its small copy) per frame; the frame only where it may be detected in full
        (a key frame, and the last), so that frames read ahead take little memory."""
        held = None  # (index, frame, small copy) of the frame before, which may be the last
        for index, frame in enumerate(frames):
            if held is not None:
                before, full, small = held
                yield (full if before % self.every == 0 else None), small
            held = (index, frame, self._shrink(frame))
        if held is not None:
            yield held[1], held[2]

    def _resolve(self, queue, scale: float, run: _Run) -> None:
        """Detect the queued key frames, settle the frames between them, append all to `run`."""
        keys = self._detect_keys([(full, small) for full, small, _ in queue], scale)
        for (_, _, between), faces in zip(queue, keys):
            first, frame = len(run.out), len(run.out) + len(between)
            interpolated = False
            if between and run.anchor is not None:  # try the key frame first
                before = run.picker.copy()
                key = run.settle(frame, faces)
                interpolated = self._steady(run, key, first, frame)
                if interpolated:
                    run.out.extend(_interpolate_sightings(run.anchor, key, len(between) + 1))
                else:  # settled again below, after the frames before it
                    run.picker = before
            if not interpolated:
                for offset, between_faces in enumerate(self._detect_small(between, scale)):
                    run.out.append(run.settle(first + offset, between_faces))
                key = run.settle(frame, faces)
            if self.strict and key is None:  # every frame is a key frame here
                raise MissingFaceError(frame, others=bool(faces))
            run.out.append(key)
            run.anchor = key

    def _steady(self, run: _Run, key: Optional[Sighting], first: int, frame: int) -> bool:
        """Whether the chosen person is seen at both key frames, as one appearance in one shot,
        having moved at most `motion_tolerance` of their size: then the boxes between blend."""
        anchor = run.anchor
        return (anchor is not None and key is not None and anchor.appearance == key.appearance
                and not any(run.cut_at(i) for i in range(first, frame + 1))
                and not _moved(anchor.box, key.box, self.motion_tolerance))


def nearest_appearances(sightings: Sequence[Optional[Sighting]]) -> np.ndarray:
    """Per frame, the appearance of the nearest sighting (the later one on a tie, as the frames
    of a new shot come before its person is chosen again): the person's stretch a frame without
    them is filled from. None everywhere: zeros."""
    known = np.flatnonzero([s is not None for s in sightings])
    if not known.size:
        return np.zeros(len(sightings), np.int64)
    labels = np.array([sightings[i].appearance for i in known])
    frames = np.arange(len(sightings))
    after = np.clip(np.searchsorted(known, frames), 0, known.size - 1)
    before = np.clip(after - 1, 0, known.size - 1)
    nearer_before = np.abs(frames - known[before]) < np.abs(known[after] - frames)
    return labels[np.where(nearer_before, before, after)]


def _blend_gaps(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(N, k) rows with NaN where unknown: each unknown row a linear blend of the nearest known
    rows of its group (the nearest one at either end); a group with none stays NaN."""
    frames = np.arange(len(values))
    filled = np.full(values.shape, np.nan)
    for group in np.unique(groups):
        members = frames[groups == group]
        known = members[~np.isnan(values[members]).any(axis=1)]
        if known.size:
            filled[members] = np.stack([np.interp(members, known, values[known, k])
                                        for k in range(values.shape[1])], axis=1)
    return filled


def fill_missing(boxes: Sequence[Optional[XYXYBox]], source: str = "the video",
                 appearances: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, 4) float boxes (XYXYBox's columns) where frames without a face take a linear blend
    of their nearest detected neighbours (the nearest one at either end). With `appearances`
    (per frame, see `nearest_appearances`) only boxes of one appearance are blended: a gap
    between two takes the nearer one's box. All missing: NoFaceError."""
    found = np.array([b is not None for b in boxes])
    if not found.any():
        raise NoFaceError(f"no face found in {source}; check the input or give --box")
    groups = np.zeros(len(boxes), np.int64) if appearances is None else np.asarray(appearances)
    values = np.array([(np.nan,) * 4 if b is None else b for b in boxes], dtype=np.float64)
    filled = _blend_gaps(values, groups)
    missing = len(boxes) - int(found.sum())
    if missing:
        logger.info("no face in %d of %d frames of %s: filled from the nearest detections",
                    missing, len(boxes), source)
    return filled


def fill_mouths(sightings: Sequence[Optional[Sighting]], boxes: np.ndarray,
                appearances: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """(N, 3) mouths (`Mouth`'s columns, pixels) on `fill_missing`'s boxes: a frame whose mouth
    was marked keeps it; the others blend their nearest marked neighbours' as `fill_missing`
    blends boxes, each mouth taken relative to its own box (shares of its width and height) and
    put on this frame's box, so a filled mouth moves with its filled box. NaN rows for an
    appearance never marked; None if no frame has a mouth (a detector without landmarks)."""
    if not any(s is not None and s.mouth is not None for s in sightings):
        return None
    x1, y1, x2, y2 = boxes.T
    width, height = np.maximum(x2 - x1, 1), np.maximum(y2 - y1, 1)
    marks = np.array([(np.nan,) * 3 if s is None or s.mouth is None else s.mouth
                      for s in sightings], dtype=np.float64)
    shares = np.stack([(marks[:, 0] - x1) / width, (marks[:, 1] - y1) / height,
                       marks[:, 2] / width], axis=1)
    groups = np.zeros(len(boxes), np.int64) if appearances is None else np.asarray(appearances)
    shares = _blend_gaps(shares, groups)
    return np.stack([x1 + shares[:, 0] * width, y1 + shares[:, 1] * height,
                     shares[:, 2] * width], axis=1)


def mouths_in_boxes(mouths: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, 3) pixel mouths as shares of their (N, 4) boxes: centre x and y of the width and
    height from the box's corner, half width of the width (what `paste_face` takes)."""
    x1, y1, x2, y2 = boxes.astype(np.float64).T
    width, height = np.maximum(x2 - x1, 1), np.maximum(y2 - y1, 1)
    return np.stack([(mouths[:, 0] - x1) / width, (mouths[:, 1] - y1) / height,
                     mouths[:, 2] / width], axis=1)


def pad_boxes(boxes: np.ndarray, pads: Sequence[int], height: int, width: int) -> np.ndarray:
    """Grow (x1, y1, x2, y2) boxes by --pads (top, bottom, left, right), clamped to the frame."""
    top, bottom, left, right = pads
    x1, y1, x2, y2 = boxes.T
    return np.stack([np.maximum(0, x1 - left), np.maximum(0, y1 - top),
                     np.minimum(width, x2 + right), np.minimum(height, y2 + bottom)], axis=1)


def smooth_boxes(boxes: np.ndarray, window: int = 5,
                 appearances: Optional[np.ndarray] = None) -> np.ndarray:
    """The references' `get_smoothened_boxes`, exactly: box i becomes the mean of boxes
    i..i+window-1, or of the last `window` boxes once that would run past the end. For clips
    shorter than `window` the references' start `len - window` is negative, which Python slices
    from the end: 3 boxes average the last 2, 4 boxes take the last one. Computed in place on an
    int array, so later windows see earlier results and means are truncated.
    With `appearances` (per frame) each run of one appearance is smoothed on its own, as a clip:
    a box is never averaged with another person's."""
    return _smooth_runs(boxes.astype(np.int64), window, appearances)


def smooth_mouths(mouths: np.ndarray, window: int = 5,
                  appearances: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, 3) mouths smoothed over `smooth_boxes`' windows (in floats), so each stays on the
    face its smoothed box shows."""
    return _smooth_runs(mouths.astype(np.float64), window, appearances)


def _smooth_runs(values: np.ndarray, window: int, appearances: Optional[np.ndarray]) -> np.ndarray:
    """`smooth_boxes`' windows over the rows of `values`, in place (an int array truncates)."""
    if appearances is not None:
        starts = [0, *np.flatnonzero(np.diff(appearances)) + 1, len(values)]
        for start, stop in zip(starts[:-1], starts[1:]):
            values[start:stop] = _smooth_runs(values[start:stop], window, None)
        return values
    count = len(values)
    for i in range(count):
        window_rows = values[count - window:] if i + window > count else values[i:i + window]
        values[i] = np.mean(window_rows, axis=0)
    return values
