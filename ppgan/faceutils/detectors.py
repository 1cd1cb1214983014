"""The one way to build a face detector, and the names the command lines offer.

Light on purpose (no NumPy, no Paddle): the tools take their `--face_detector` choices from
`DETECTORS` before the slow imports; a detector's module is imported only when it is built.
"""
import importlib
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .face_detection.detection.core import FaceDetector

# name -> (module under face_detection.detection, class name)
DETECTORS = {
    "sfd": ("sfd", "SFDDetector"),
    "blazeface": ("blazeface", "BlazeFaceDetector"),
    "mtcnn": ("mtcnn", "MTCNNDetector"),
}

# Detectors whose default differs from PaddleGAN's, and which take `reference=True` to be it.
WITH_REFERENCE_MODE = {"blazeface"}


def build_detector(name: str, path_to_detector: Optional[str] = None, reference: bool = False,
                   device: Optional[str] = None, **kwargs) -> "FaceDetector":
    """The detector `name` on `device` (None: Paddle's default device); `reference=True` behaves
    as PaddleGAN's (S3FD always does, MTCNN has no PaddleGAN counterpart). Other keyword
    arguments go to the detector's class."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector '{name}' (choose from {', '.join(DETECTORS)})")
    if reference and name in WITH_REFERENCE_MODE:
        kwargs["reference"] = True
    module_name, class_name = DETECTORS[name]
    module = importlib.import_module(f".face_detection.detection.{module_name}", __package__)
    return getattr(module, class_name)(path_to_detector=path_to_detector, device=device, **kwargs)
