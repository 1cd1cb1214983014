"""Pasting a generated face back into its frame: the references' hard paste, or a feathered one."""
import functools

import cv2
import numpy as np

from .boxes import XYXYBox


@functools.lru_cache(maxsize=64)
def feather_mask(height: int, width: int, fraction: float = 0.15) -> np.ndarray:
    """(H, W, 1) weights: 1 inside, easing to 0 at the box border over `fraction` of its size,
    so the generated face shows no edge against the frame."""
    def ramp(size: int) -> np.ndarray:
        margin = max(1.0, fraction * size)
        distance = np.minimum(np.arange(size) + 0.5, size - 0.5 - np.arange(size))
        t = np.clip(distance / margin, 0.0, 1.0)
        return t * t * (3 - 2 * t)  # smoothstep: no visible crease where the ramp ends

    return np.outer(ramp(height), ramp(width)).astype(np.float32)[..., None]


def paste_face(frame: np.ndarray, face: np.ndarray, box: XYXYBox, feather: bool = True) -> None:
    """Resize `face` (uint8 BGR) to `box` and write it into `frame` in place."""
    x1, y1, x2, y2 = box
    face = cv2.resize(face, (x2 - x1, y2 - y1))
    if not feather:
        frame[y1:y2, x1:x2] = face
        return
    region = frame[y1:y2, x1:x2].astype(np.float32)
    weight = feather_mask(y2 - y1, x2 - x1)
    frame[y1:y2, x1:x2] = np.rint(region + weight * (face.astype(np.float32) - region)).astype(np.uint8)
