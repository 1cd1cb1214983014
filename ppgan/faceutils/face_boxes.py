"""One face box per video frame: batched detection, gap filling, padding and smoothing."""
import logging
from typing import Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .face_detection import FaceAlignment
from ..utils.boxes import XYXYBox
from ..utils.errors import UserError

logger = logging.getLogger(__name__)


class NoFaceError(UserError, ValueError):
    """No usable face was found; the message says where."""


class MissingFaceError(NoFaceError):
    """A frame without a face where every frame must show one (`strict`); `frame` is its index."""

    def __init__(self, frame: int):
        super().__init__(f"no face in frame {frame}")
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


def _interpolate(a: XYXYBox, b: XYXYBox, steps: int) -> List[XYXYBox]:
    """The `steps - 1` boxes strictly between a and b, linearly."""
    return [XYXYBox(*(int(round(p + (q - p) * k / steps)) for p, q in zip(a, b)))
            for k in range(1, steps)]


class BoxDetector:
    """Runs a face detector over a stream of frames in batches, as cheaply as the video allows.

    `max_size` bounds the longest side of the copy the detector sees (0: full resolution, as the
    references); a key frame whose copy shows no face is detected again on a copy twice as large
    (at most the frame itself): small faces are found, and S3FD's memory, which grows with the
    pixels it sees, stays bounded whatever the resolution.
    `every`: detect every k-th frame only (key frames) and interpolate the boxes between two key
    frames, unless the face moved more than `motion_tolerance` of its size between them (or one
    has no face): then the frames between are detected too. every=1 detects every frame, as the
    references. Holds at most `batch_size` full frames and their small copies.
    `strict`: the references' rule that every frame must show a face. Every frame is then
    detected (whatever `every` says), a miss is retried up to the full frame, and the first frame
    still without a face raises NoFaceError at once.
    """

    def __init__(self, detector: FaceAlignment, batch_size: int = 16, max_size: int = 0,
                 every: int = 1, motion_tolerance: float = 0.1, strict: bool = False):
        self.detector = detector
        self.batch_size = max(1, batch_size)
        self.max_size = max_size
        self.every = 1 if strict else max(1, every)
        self.motion_tolerance = motion_tolerance
        self.strict = strict

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

    def _detect(self, frames: List[np.ndarray], scale: float) -> List[Optional[XYXYBox]]:
        boxes = self.detector.get_detections_for_batch(np.stack(frames))
        return [None if b is None else XYXYBox(*(int(round(v / scale)) for v in b)) for b in boxes]

    def _with_backoff(self, detect, items: list) -> List[Optional[XYXYBox]]:
        """`detect` over `items` in sub-batches, halving them whenever the device runs out of memory."""
        results: List[Optional[XYXYBox]] = []
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

    def _detect_small(self, smalls: List[np.ndarray], scale: float) -> List[Optional[XYXYBox]]:
        return self._with_backoff(lambda chunk: self._detect(chunk, scale), smalls)

    def _detect_keys(self, keys: List[Tuple[np.ndarray, np.ndarray]],
                     scale: float) -> List[Optional[XYXYBox]]:
        """Boxes of (full, small) key frames: on the small copies, misses again on larger ones
        (twice the size; strict: then the full frame)."""
        boxes = self._detect_small([small for _, small in keys], scale)
        tried = {scale}
        for size in (2 * self.max_size, 0) if self.strict else (2 * self.max_size,):
            retry = [i for i, box in enumerate(boxes) if box is None]
            larger_scale = self._scale(keys[0][0], size)  # a video's frames share one size
            if not retry or larger_scale in tried:
                continue
            tried.add(larger_scale)
            larger = [self._shrink(keys[i][0], size) for i in retry]
            found = self._with_backoff(lambda chunk: self._detect(chunk, larger_scale), larger)
            for i, box in zip(retry, found):
                boxes[i] = box
        return boxes

    def detect(self, frames: Iterable[np.ndarray]) -> List[Optional[XYXYBox]]:
        """The face box of every frame, or None where no face was found."""
        boxes: List[Optional[XYXYBox]] = []
        anchor: Optional[XYXYBox] = None  # the last key frame's box
        queue = []  # key frames awaiting detection: (full, small, smalls of the frames before it)
        between: List[np.ndarray] = []
        scale, last = 1.0, None
        for index, frame in enumerate(frames):
            scale = self._scale(frame)
            small = self._shrink(frame)
            if index % self.every:
                between.append(small)
                last = (frame, small)
                continue
            queue.append((frame, small, between))
            between, last = [], None
            if len(queue) == self.batch_size:
                anchor = self._resolve(queue, anchor, scale, boxes)
                queue = []
        if last is not None:  # the video ends between key frames: its last frame is one too
            queue.append((last[0], last[1], between[:-1]))
        if queue:
            self._resolve(queue, anchor, scale, boxes)
        return boxes

    def _resolve(self, queue, anchor: Optional[XYXYBox], scale: float,
                 out: List[Optional[XYXYBox]]) -> Optional[XYXYBox]:
        """Detect the queued key frames, settle the frames between them, append all to `out`."""
        keys = self._detect_keys([(full, small) for full, small, _ in queue], scale)
        if self.strict and None in keys:  # every frame is a key frame here
            raise MissingFaceError(len(out) + keys.index(None))
        for (_, _, between), key in zip(queue, keys):
            if between:
                if _moved(anchor, key, self.motion_tolerance):
                    out.extend(self._detect_small(between, scale))
                else:
                    out.extend(_interpolate(anchor, key, len(between) + 1))
            out.append(key)
            anchor = key
        return anchor


def fill_missing(boxes: Sequence[Optional[XYXYBox]], source: str = "the video") -> np.ndarray:
    """(N, 4) float boxes (XYXYBox's columns) where frames without a face take a linear blend
    of their nearest detected neighbours (the nearest one at either end). All missing:
    NoFaceError."""
    found = np.array([b is not None for b in boxes])
    if not found.any():
        raise NoFaceError(f"no face found in {source}; check the input or give --box")
    known = np.flatnonzero(found)
    values = np.array([boxes[i] for i in known], dtype=np.float64)
    frames = np.arange(len(boxes))
    filled = np.stack([np.interp(frames, known, values[:, k]) for k in range(4)], axis=1)
    missing = len(boxes) - len(known)
    if missing:
        logger.info("no face in %d of %d frames of %s: filled from the nearest detections",
                    missing, len(boxes), source)
    return filled


def pad_boxes(boxes: np.ndarray, pads: Sequence[int], height: int, width: int) -> np.ndarray:
    """Grow (x1, y1, x2, y2) boxes by --pads (top, bottom, left, right), clamped to the frame."""
    top, bottom, left, right = pads
    x1, y1, x2, y2 = boxes.T
    return np.stack([np.maximum(0, x1 - left), np.maximum(0, y1 - top),
                     np.minimum(width, x2 + right), np.minimum(height, y2 + bottom)], axis=1)


def smooth_boxes(boxes: np.ndarray, window: int = 5) -> np.ndarray:
    """The references' `get_smoothened_boxes`, exactly: box i becomes the mean of boxes
    i..i+window-1, or of the last `window` boxes once that would run past the end. For clips
    shorter than `window` the references' start `len - window` is negative, which Python slices
    from the end: 3 boxes average the last 2, 4 boxes take the last one. Computed in place on an
    int array, so later windows see earlier results and means are truncated."""
    boxes = boxes.astype(np.int64)
    count = len(boxes)
    for i in range(count):
        window_boxes = boxes[count - window:] if i + window > count else boxes[i:i + window]
        boxes[i] = np.mean(window_boxes, axis=0)
    return boxes
