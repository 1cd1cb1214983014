"""PaddleGAN's face-detection entry point: `FaceAlignment(...).get_detections_for_batch(frames)`."""
import importlib
from enum import IntEnum
from typing import List, Optional

import numpy as np

from ...utils.boxes import XYXYBox
from .detection.core import FaceDetector

# name -> (module under .detection, class name); imported on demand so unused nets cost nothing.
DETECTORS = {
    "sfd": ("sfd", "SFDDetector"),
    "blazeface": ("blazeface", "BlazeFaceDetector"),
    "mtcnn": ("mtcnn", "MTCNNDetector"),
}

# Detectors whose default differs from PaddleGAN's, and which take `reference=True` to be it.
WITH_REFERENCE_MODE = {"blazeface"}


class LandmarksType(IntEnum):
    _2D = 1
    _2halfD = 2
    _3D = 3


class NetworkSize(IntEnum):
    LARGE = 4


def build_detector(name: str, path_to_detector: Optional[str] = None, reference: bool = False,
                   device: Optional[str] = None, **kwargs) -> FaceDetector:
    """The detector `name` on `device` (None: Paddle's default device); `reference=True` behaves
    as PaddleGAN's (S3FD always does, MTCNN has no PaddleGAN counterpart)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector '{name}' (choose from {', '.join(DETECTORS)})")
    if reference and name in WITH_REFERENCE_MODE:
        kwargs["reference"] = True
    module_name, class_name = DETECTORS[name]
    module = importlib.import_module(f"{__package__}.detection.{module_name}")
    return getattr(module, class_name)(path_to_detector=path_to_detector, device=device, **kwargs)


class FaceAlignment:
    """Finds the most confident face box in each frame of a batch (BGR in, as OpenCV reads)."""

    def __init__(self, landmarks_type: LandmarksType = LandmarksType._2D,
                 network_size: NetworkSize = NetworkSize.LARGE, flip_input: bool = False,
                 face_detector: str = "sfd", path_to_detector: Optional[str] = None,
                 verbose: bool = False, reference: bool = False, device: Optional[str] = None,
                 **detector_kwargs):
        self.landmarks_type = landmarks_type
        self.face_detector = build_detector(face_detector, path_to_detector, reference, device,
                                            **detector_kwargs)

    def get_detections_for_batch(self, images: np.ndarray) -> List[Optional[XYXYBox]]:
        """`images` (N, H, W, 3) BGR uint8 -> per frame its best box (ints), or None."""
        rgb = np.ascontiguousarray(images[..., ::-1])
        results = []
        for boxes in self.face_detector.detect_batch(rgb):
            if len(boxes) == 0:
                results.append(None)
                continue
            results.append(XYXYBox(*(int(v) for v in np.maximum(boxes[0, :4], 0))))
        return results
