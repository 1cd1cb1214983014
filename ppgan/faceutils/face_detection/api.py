"""PaddleGAN's face-detection entry point: `FaceAlignment(...).get_detections_for_batch(frames)`;
`get_all_detections_with_mouths` adds each face's mouth where the detector marks it."""
from enum import IntEnum
from typing import List, Optional, Tuple

import numpy as np

from ...utils.boxes import Mouth, XYXYBox
from ..detectors import build_detector


class LandmarksType(IntEnum):
    _2D = 1
    _2halfD = 2
    _3D = 3


class NetworkSize(IntEnum):
    LARGE = 4


class FaceAlignment:
    """Finds the face boxes in each frame of a batch (BGR in, as OpenCV reads).

    PaddleGAN's interface to a detector that `build_detector` makes; `landmarks_type`,
    `network_size`, `flip_input` and `verbose` are accepted as PaddleGAN's and unused."""

    def __init__(self, landmarks_type: LandmarksType = LandmarksType._2D,
                 network_size: NetworkSize = NetworkSize.LARGE, flip_input: bool = False,
                 face_detector: str = "sfd", path_to_detector: Optional[str] = None,
                 verbose: bool = False, reference: bool = False, device: Optional[str] = None,
                 **detector_kwargs):
        self.landmarks_type = landmarks_type
        self.face_detector = build_detector(face_detector, path_to_detector, reference, device,
                                            **detector_kwargs)

    def get_all_detections_for_batch(self, images: np.ndarray) -> List[List[XYXYBox]]:
        """`images` (N, H, W, 3) BGR uint8 -> per frame every face box found (ints, clipped
        at 0), ranked as the detector ranks them (best first); an empty list for none."""
        rgb = np.ascontiguousarray(images[..., ::-1])
        return [[_box(row) for row in boxes] for boxes in self.face_detector.detect_batch(rgb)]

    def get_all_detections_with_mouths(
            self, images: np.ndarray) -> List[List[Tuple[XYXYBox, Optional[Mouth]]]]:
        """As `get_all_detections_for_batch`, each box paired with its face's mouth (in
        pixels), or None from a detector without landmarks (S3FD)."""
        rgb = np.ascontiguousarray(images[..., ::-1])
        return [[(_box(row), None if mouths is None else Mouth(*map(float, mouths[k])))
                 for k, row in enumerate(boxes)]
                for boxes, mouths in self.face_detector.detect_batch_with_mouths(rgb)]

    def get_detections_for_batch(self, images: np.ndarray) -> List[Optional[XYXYBox]]:
        """`images` (N, H, W, 3) BGR uint8 -> per frame its best box (ints), or None:
        PaddleGAN's method."""
        return [faces[0] if faces else None for faces in self.get_all_detections_for_batch(images)]


def _box(row: np.ndarray) -> XYXYBox:
    return XYXYBox(*(int(v) for v in np.maximum(row[:4], 0)))
