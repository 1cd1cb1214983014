"""One face box per video frame: batched detection, gap filling, padding and smoothing."""
import logging
from typing import Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .face_detection import FaceAlignment

logger = logging.getLogger(__name__)

Box = Tuple[int, int, int, int]


class NoFaceError(ValueError):
    """No usable face was found; the message says where."""


def _is_out_of_memory(err: Exception) -> bool:
    # Paddle reports device OOM as MemoryError (ResourceExhausted) or a RuntimeError naming memory.
    return isinstance(err, MemoryError) or "memory" in str(err).lower()


class BoxDetector:
    """Runs a face detector over frames in batches, on downscaled copies when that is enough.

    `max_size` bounds the longest side of the copy the detector sees (0: full resolution, as the
    references). A frame whose copy shows no face is detected again at full resolution, so
    downscaling only ever costs a second look, never a missed face.
    """

    def __init__(self, detector: FaceAlignment, batch_size: int = 16, max_size: int = 0):
        self.detector = detector
        self.batch_size = max(1, batch_size)
        self.max_size = max_size

    def _scale(self, frame: np.ndarray) -> float:
        longest = max(frame.shape[:2])
        return 1.0 if self.max_size <= 0 or longest <= self.max_size else self.max_size / longest

    def _detect(self, frames: List[np.ndarray], scale: float) -> List[Optional[Box]]:
        if scale != 1.0:
            height, width = frames[0].shape[:2]
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
        boxes = self.detector.get_detections_for_batch(np.stack(frames))
        return [None if b is None else tuple(int(round(v / scale)) for v in b) for b in boxes]

    def _detect_batch(self, frames: List[np.ndarray]) -> List[Optional[Box]]:
        scale = self._scale(frames[0])
        boxes = self._detect(frames, scale)
        retry = [i for i, b in enumerate(boxes) if b is None]
        if scale != 1.0 and retry:
            for i, box in zip(retry, self._detect([frames[i] for i in retry], 1.0)):
                boxes[i] = box
        return boxes

    def _detect_with_backoff(self, frames: List[np.ndarray]) -> List[Optional[Box]]:
        """Detect in sub-batches, halving their size whenever the device runs out of memory."""
        results: List[Optional[Box]] = []
        while len(results) < len(frames):
            chunk = frames[len(results):len(results) + self.batch_size]
            try:
                results.extend(self._detect_batch(chunk))
            except (MemoryError, RuntimeError) as err:
                if not _is_out_of_memory(err) or self.batch_size == 1:
                    if _is_out_of_memory(err):
                        raise NoFaceError("a single frame is too big for face detection on this "
                                          "device: use --resize_factor") from None
                    raise
                self.batch_size //= 2
                logger.warning("face detection ran out of memory; batch size now %d", self.batch_size)
        return results

    def detect(self, frames: Iterable[np.ndarray]) -> List[Optional[Box]]:
        """Boxes (x1, y1, x2, y2) or None for every frame; holds at most one batch of frames."""
        boxes: List[Optional[Box]] = []
        batch: List[np.ndarray] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.batch_size:
                boxes.extend(self._detect_with_backoff(batch))
                batch = []
        if batch:
            boxes.extend(self._detect_with_backoff(batch))
        return boxes


def fill_missing(boxes: Sequence[Optional[Box]], source: str = "the video") -> np.ndarray:
    """(N, 4) float boxes where frames without a face take a linear blend of their nearest
    detected neighbours (the nearest one at either end). All missing: NoFaceError."""
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
    """The references' smoothing: box i becomes the mean of boxes i..i+window-1 (the last
    `window` near the end), computed in place on an int array, so later windows see earlier
    results and means are truncated, exactly as `get_smoothened_boxes`."""
    boxes = boxes.astype(np.int64)
    count = len(boxes)
    for i in range(count):
        start = max(0, min(i, count - window))
        boxes[i] = np.mean(boxes[start:start + window], axis=0)
    return boxes
