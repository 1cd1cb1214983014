"""Pasting a generated face back into its frame.

Three modes (`checks.BLENDS`): "mouth" (the default) blends in only the lower half of the box, the part
the generator was asked to redraw (its input shows it the upper half), so the eyes and nose keep
the frame's full resolution; "face" feathers the whole box in; "hard" pastes the box as the
references do.
"""
import functools

import cv2
import numpy as np

from .boxes import XYXYBox
from .checks import BLENDS
FEATHER = 0.15  # of the box's size: the width of the soft edge
# The generator's input hides rows H/2..H of the face; the mouth mask rises from 0 there to 1
# over this share of the box's height, so no row above the middle changes at all.
MOUTH_RISE = 0.15


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)  # no visible crease where a ramp ends


def _edge_ramp(size: int, fraction: float) -> np.ndarray:
    """Weights along one side: 0 at both ends, 1 from `fraction` of `size` inwards."""
    margin = max(1.0, fraction * size)
    distance = np.minimum(np.arange(size) + 0.5, size - 0.5 - np.arange(size))
    return _smoothstep(distance / margin)


@functools.lru_cache(maxsize=64)
def feather_mask(height: int, width: int, fraction: float = FEATHER) -> np.ndarray:
    """(H, W, 1) weights: 1 inside, easing to 0 at the box border over `fraction` of its size,
    so the generated face shows no edge against the frame."""
    return np.outer(_edge_ramp(height, fraction), _edge_ramp(width, fraction)).astype(
        np.float32)[..., None]


@functools.lru_cache(maxsize=64)
def mouth_mask(height: int, width: int) -> np.ndarray:
    """(H, W, 1) weights: 0 on the upper half of the box, rising below the middle to 1 over the
    mouth and chin, feathered at the sides and the bottom like `feather_mask`."""
    rows = (np.arange(height) + 0.5) / height  # pixel centres, as shares of the height
    rise = _smoothstep((rows - 0.5) / MOUTH_RISE)
    bottom = _smoothstep((1.0 - rows) / FEATHER)
    return np.outer(rise * bottom, _edge_ramp(width, FEATHER)).astype(np.float32)[..., None]


def blend_mask(blend: str, height: int, width: int) -> np.ndarray:
    """The weights of the generated face for blend mode `blend` ("mouth" or "face")."""
    return mouth_mask(height, width) if blend == "mouth" else feather_mask(height, width)


def paste_face(frame: np.ndarray, face: np.ndarray, box: XYXYBox, blend: str = "mouth") -> None:
    """Resize `face` (uint8 BGR) to `box` and write it into `frame` in place, as `blend` says."""
    if blend not in BLENDS:
        raise ValueError(f"unknown blend '{blend}' (choose from {', '.join(BLENDS)})")
    x1, y1, x2, y2 = box
    face = cv2.resize(face, (x2 - x1, y2 - y1))
    if blend == "hard":
        frame[y1:y2, x1:x2] = face
        return
    region = frame[y1:y2, x1:x2].astype(np.float32)
    weight = blend_mask(blend, y2 - y1, x2 - x1)
    frame[y1:y2, x1:x2] = np.rint(region + weight * (face.astype(np.float32) - region)).astype(np.uint8)


def cross_fade(generated: np.ndarray, source: np.ndarray, source_share: float) -> np.ndarray:
    """`source_share` of `source` over `generated` (uint8 frames of one size)."""
    mixed = generated.astype(np.float32) + source_share * (source.astype(np.float32) - generated)
    return np.rint(mixed).astype(np.uint8)
