"""The predictor's first pass: one face box per frame of a video, from a fixed box or detection,
and where the detector marks mouths (MTCNN, BlazeFace) each frame's mouth within its box.

The detection settings travel together in a `DetectionOptions`; the device the detector runs on
is passed in, never taken from Paddle's process-wide default. What is worth keeping between runs
(the detectors, the boxes found) lives in a `DetectionMemory`.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..faceutils.detection_cache import (detection_keys, entry_path, load_detections,
                                         save_detections)
from ..faceutils.face_boxes import (BoxDetector, MissingFaceError, NoFaceError, fill_missing,
                                    fill_mouths, mouths_in_boxes, nearest_appearances, pad_boxes,
                                    smooth_boxes, smooth_mouths)
from ..faceutils.face_detection import FaceAlignment
from ..faceutils.face_track import FaceChoice, Selection, Sighting
from ..utils.boxes import XYXYBox
from ..utils.checks import shown
from ..utils.progress import ProgressHook, ReportedBar
from ..utils.video import FrameSource, InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectionOptions:
    """How the face boxes are found: the predictor's detection arguments, checked.

    `box`: a fixed box for every frame, skipping detection (None: detect). `pads` (top,
    bottom, left, right) grow detected boxes. `max_size`, `every`, `strict`: see
    `BoxDetector`. `cache`: reuse the detections of an earlier run on the same video and
    settings. `reference`: the detector behaves as PaddleGAN's. `face_select`: the person to
    follow ("largest", an index from the left, or a point (x, y) of the input frame, as
    `ppgan.utils.checks.face_select` takes them; see `ppgan.faceutils.face_track`); None: each
    frame's top-ranked face, as the references. `precision`: S3FD's (the
    others run in fp32).
    """
    detector: str = "sfd"
    detector_path: Optional[str] = None
    batch_size: int = 16
    pads: Tuple[int, int, int, int] = (0, 10, 0, 0)
    box: Optional[XYXYBox] = None
    smooth: bool = True
    strict: bool = False
    max_size: int = 360
    every: int = 5
    cache: bool = True
    reference: bool = False
    face_select: Optional[Selection] = "largest"
    precision: str = "fp32"


Detections = List[Optional[Sighting]]  # per frame the chosen face, None where it was not found


@dataclass
class DetectionMemory:
    """What a predictor keeps between runs: its face detectors (the weights load once) and the
    detections it made, keyed as the disk cache, so that runs on the same video in one process
    detect it once even without the disk cache."""
    detectors: Dict[tuple, FaceAlignment] = field(default_factory=dict)
    detections: Dict[str, Detections] = field(default_factory=dict)

    def detector(self, options: DetectionOptions, device: str) -> FaceAlignment:
        key = (options.detector, options.detector_path, options.reference, device,
               options.precision)
        if key not in self.detectors:
            self.detectors[key] = FaceAlignment(
                face_detector=options.detector, path_to_detector=options.detector_path,
                reference=options.reference, device=device, **_precision_argument(options))
        return self.detectors[key]


def _precision_argument(options: DetectionOptions) -> dict:
    return {"precision": options.precision} if options.detector == "sfd" else {}


def face_boxes(source: FrameSource, count: int, options: DetectionOptions, device: str,
               preprocessing: Mapping[str, Any], memory: DetectionMemory,
               progress: Optional[ProgressHook] = None) -> np.ndarray:
    """(N, 4) int boxes (XYXYBox's columns) for the first `count` frames (N < count if the
    video ends sooner): with their mouths (`face_boxes_and_mouths`), the only per-frame state
    the pipeline keeps. `preprocessing` says how the source's frames were resized, cropped and
    rotated (part of the detection cache's key); `progress` is told the frames read for
    detection (not called for a fixed box or boxes found before)."""
    return face_boxes_and_mouths(source, count, options, device, preprocessing, memory,
                                 progress)[0]


def face_boxes_and_mouths(source: FrameSource, count: int, options: DetectionOptions,
                          device: str, preprocessing: Mapping[str, Any], memory: DetectionMemory,
                          progress: Optional[ProgressHook] = None
                          ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """`face_boxes`' boxes, and per frame its mouth as shares of its final box (N, 3): centre
    x and y, half width, as `paste_face` takes them (NaN rows where none is known). Mouths are
    filled and smoothed as the boxes are; None without any (a fixed box, S3FD)."""
    if options.box is not None:
        return _fixed_boxes(source, count, options.box), None
    try:
        sightings = _detections(source, count, options, device, preprocessing, memory, progress)
    except MissingFaceError as err:
        raise NoFaceError(f"{err} of {source.path} (ensure every frame shows a face, or drop "
                          "--strict_face)") from None
    appearances = nearest_appearances(sightings)
    boxes = fill_missing([None if s is None else s.box for s in sightings], source.path,
                         appearances)
    mouths = fill_mouths(sightings, boxes, appearances)
    boxes = pad_boxes(boxes, options.pads, source.height, source.width)
    _check_padded(boxes, options.pads, source)
    if not options.smooth:
        boxes = boxes.astype(np.int64)
        return boxes, None if mouths is None else mouths_in_boxes(mouths, boxes)
    boxes = smooth_boxes(boxes, appearances=appearances)
    if mouths is None:
        return boxes, None
    return boxes, mouths_in_boxes(smooth_mouths(mouths, appearances=appearances), boxes)


def _fixed_boxes(source: FrameSource, count: int, box: XYXYBox) -> np.ndarray:
    if not (0 <= box.y1 < box.y2 <= source.height and 0 <= box.x1 < box.x2 <= source.width):
        raise InputError(f"--box {box.y1} {box.y2} {box.x1} {box.x2} (top bottom left right) is "
                         f"not inside the {source.width}x{source.height} frame")
    found = sum(1 for _ in source.frames(0, count)) if count > 1 else 1
    return np.tile(box, (found, 1))


def _check_padded(boxes: np.ndarray, pads: Tuple[int, ...], source: FrameSource) -> None:
    """Negative --pads shrink the face box; one they leave empty has nothing to lip-sync.
    (Smoothing averages non-empty boxes, which keeps them non-empty.)"""
    x1, y1, x2, y2 = boxes.T
    empty = np.flatnonzero((x2 - x1 < 1) | (y2 - y1 < 1))
    if empty.size:
        raise InputError(f"--pads {shown(pads)} (top bottom left right) leave no face box "
                         f"in frame {empty[0]} of {source.path}: pad less negatively")


def _file_identity(path: Optional[str]) -> Optional[list]:
    """Path, size and modification time: enough to notice other detector weights."""
    if not path or not os.path.isfile(path):
        return path
    stat = os.stat(path)
    return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]


def _detections(source: FrameSource, count: int, options: DetectionOptions, device: str,
                preprocessing: Mapping[str, Any], memory: DetectionMemory,
                progress: Optional[ProgressHook]) -> Detections:
    """The chosen face of each frame, None where it was not found: from an earlier run of this
    process, the disk cache, or the detector."""
    choice = None if options.face_select is None else FaceChoice.of(options.face_select,
                                                                    source.frame_point)
    settings = dict(detector=options.detector, weights=_file_identity(options.detector_path),
                    max_size=options.max_size, every=options.every,
                    transform=dict(preprocessing), strict=options.strict,
                    reference=options.reference,
                    face_select=None if choice is None else [choice.rule, choice.index,
                                                             list(choice.point)],
                    **_precision_argument(options))
    keys = detection_keys(source.path, settings, count)
    found = _recalled(keys, count, memory, options.cache)
    if found is not None:
        return found
    detector = BoxDetector(memory.detector(options, device), options.batch_size,
                           options.max_size, options.every, strict=options.strict, choice=choice)
    # A video shorter than the audio is read to its end (its frame count, as its container says).
    # Closed on the way out, an error's too: a bar left to the garbage collector is drawn again
    # after the run's last message.
    with ReportedBar(source.frames(0, count), hook=progress, total=min(count, source.num_frames),
                     desc="face detection", unit="frame", disable=count < 2, leave=None) as frames:
        detections = detector.track(frames)
    # Fewer boxes than asked for: the video ended, and these are all its frames' boxes.
    key = keys[0] if len(detections) == count else keys[1]
    memory.detections[key] = detections
    if options.cache:
        save_detections(key, detections)
    return detections


def _recalled(keys: Tuple[str, str], count: int, memory: DetectionMemory,
              disk: bool) -> Optional[Detections]:
    """The sightings stored under the first key (`count` frames) or the second (the whole
    video, if it has at most `count` frames), in memory or on disk; None if neither has them."""
    for key in keys:
        in_memory = memory.detections.get(key)
        found = in_memory if in_memory is not None else load_detections(key) if disk else None
        if found is None or len(found) > count:
            continue
        logger.info("face boxes of %d frames reused from %s", len(found),
                    "an earlier run in this process" if in_memory is not None else entry_path(key))
        memory.detections[key] = found
        return found
    return None
