"""The predictor's first pass: one face box per frame of a video, from a fixed box or detection.

The detection settings travel together in a `DetectionOptions`; the device the detector runs on
is passed in, never taken from Paddle's process-wide default.
"""
import os
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Tuple

import numpy as np
from tqdm import tqdm

from ..faceutils.detection_cache import detection_key, load_detections, save_detections
from ..faceutils.face_boxes import (BoxDetector, MissingFaceError, NoFaceError, fill_missing,
                                    nearest_appearances, pad_boxes, smooth_boxes)
from ..faceutils.face_detection import FaceAlignment
from ..faceutils.face_track import FaceChoice, Selection, Sighting
from ..utils.boxes import XYXYBox
from ..utils.checks import shown
from ..utils.video import FrameSource, InputError


@dataclass(frozen=True)
class DetectionOptions:
    """How the face boxes are found: the predictor's detection arguments, checked.

    `box`: a fixed box for every frame, skipping detection (None: detect). `pads` (top,
    bottom, left, right) grow detected boxes. `max_size`, `every`, `strict`: see
    `BoxDetector`. `cache`: reuse the detections of an earlier run on the same video and
    settings. `reference`: the detector behaves as PaddleGAN's. `face_select`: the person to
    follow ("largest", an index from the left, or a point (x, y) of the input frame, as
    `ppgan.utils.checks.face_select` takes them; see `ppgan.faceutils.face_track`); None: each
    frame's top-ranked face, as the references.
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


def face_boxes(source: FrameSource, count: int, options: DetectionOptions, device: str,
               preprocessing: Mapping[str, Any]) -> np.ndarray:
    """(N, 4) int boxes (XYXYBox's columns) for the first `count` frames (N < count if the
    video ends sooner): the only per-frame state the pipeline keeps. `preprocessing` says how the
    source's frames were resized, cropped and rotated (part of the detection cache's key)."""
    if options.box is not None:
        return _fixed_boxes(source, count, options.box)
    try:
        sightings = _detections(source, count, options, device, preprocessing)
    except MissingFaceError as err:
        raise NoFaceError(f"{err} of {source.path} (ensure every frame shows a face, or drop "
                          "--strict_face)") from None
    appearances = nearest_appearances(sightings)
    boxes = fill_missing([None if s is None else s.box for s in sightings], source.path,
                         appearances)
    boxes = pad_boxes(boxes, options.pads, source.height, source.width)
    _check_padded(boxes, options.pads, source)
    return smooth_boxes(boxes, appearances=appearances) if options.smooth else boxes.astype(np.int64)


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
                preprocessing: Mapping[str, Any]) -> List[Optional[Sighting]]:
    """The chosen face of each frame, None where it was not found."""
    choice = None if options.face_select is None else FaceChoice.of(options.face_select,
                                                                    source.frame_point)
    settings = dict(detector=options.detector, weights=_file_identity(options.detector_path),
                    max_size=options.max_size, every=options.every, frames=count,
                    transform=dict(preprocessing), strict=options.strict,
                    face_select=None if choice is None else [choice.rule, choice.index,
                                                             list(choice.point)])
    key = detection_key(source.path, settings) if options.cache else None
    cached = load_detections(key) if key else None
    if cached is not None:
        return cached
    aligner = FaceAlignment(face_detector=options.detector, path_to_detector=options.detector_path,
                            reference=options.reference, device=device)
    detector = BoxDetector(aligner, options.batch_size, options.max_size, options.every,
                           strict=options.strict, choice=choice)
    frames = tqdm(source.frames(0, count), total=count, desc="face detection", unit="frame",
                  disable=count < 2)
    sightings = detector.track(frames)
    if key:
        save_detections(key, sightings)
    return sightings
