"""Pasting a generated face back into its frame.

Three modes (`checks.BLENDS`): "mouth" (the default) blends in only the lower half of the box, the part
the generator was asked to redraw (its input shows it the upper half), so the eyes and nose keep
the frame's full resolution; where the detector marked the mouth (MTCNN, BlazeFace) it is also
narrowed to the mouth and the cheeks beside it, so a turned head's far cheek keeps the frame's
pixels too; "face" feathers the whole box in; "hard" pastes the box as the references do.

`color_match` shifts the generated face's colours so that, over the soft rim of its mask (where
frame and generated face are both seen), their means equal the frame's: a generator whose
output is a few levels off in tone then leaves no ring. Only the rim is measured, so an open
mouth (which should be darker) does not count as a cast.
"""
import functools
from typing import Optional, Tuple

import cv2
import numpy as np

from .boxes import XYXYBox
from .checks import BLENDS
FEATHER = 0.15  # of the box's size: the width of the soft edge
# The generator's input hides rows H/2..H of the face; the mouth mask rises from 0 there to 1
# over this share of the box's height, so no row above the middle changes at all.
MOUTH_RISE = 0.15
RIM = (0.02, 0.98)  # mask weights between these form the rim colour matching measures
# With a marked mouth the mask is full over the mouth's centre +- this many half widths (the
# jaw and cheeks move with the lips), easing to 0 over FEATHER of the box's width beyond. A
# choice, not a measurement: about the cheeks' width beside a closed mouth.
MOUTH_REACH = 1.8
# A mouth as `paste_face` takes it: centre x and y, half width, as shares of the box's width,
# height and width.
BoxMouth = Tuple[float, float, float]


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


def _mouth_columns(width: int, centre: float, half_width: float) -> np.ndarray:
    """Weights along the width: 1 within MOUTH_REACH half widths of the mouth's centre (shares
    of the width), easing to 0 over FEATHER beyond; never above the box's own side feather."""
    columns = (np.arange(width) + 0.5) / width
    beyond = np.abs(columns - centre) - MOUTH_REACH * half_width
    return np.minimum(_smoothstep(1.0 - beyond / FEATHER), _edge_ramp(width, FEATHER))


@functools.lru_cache(maxsize=64)
def mouth_mask(height: int, width: int, mouth: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """(H, W, 1) weights: 0 on the upper half of the box, rising below the middle to 1 over the
    mouth and chin, feathered at the sides and the bottom like `feather_mask`. `mouth`: its
    centre x and half width as shares of the box's width (rounded, so masks are reused); the
    mask is then full only around it (see MOUTH_REACH). Its height does not matter: the rows
    are the generator's lower half whatever the mouth's."""
    rows = (np.arange(height) + 0.5) / height  # pixel centres, as shares of the height
    rise = _smoothstep((rows - 0.5) / MOUTH_RISE)
    bottom = _smoothstep((1.0 - rows) / FEATHER)
    columns = _edge_ramp(width, FEATHER) if mouth is None else _mouth_columns(width, *mouth)
    return np.outer(rise * bottom, columns).astype(np.float32)[..., None]


def _mouth_key(blend: str, mouth: Optional[BoxMouth]) -> Optional[Tuple[float, float]]:
    """What of `mouth` shapes `blend`'s mask (only the "mouth" blend's), rounded to 1/100 of the
    box, a step the 15/100 feather hides, so frames share masks."""
    if blend != "mouth" or mouth is None:
        return None
    return round(float(mouth[0]), 2), round(float(mouth[2]), 2)


def _mask(blend: str, height: int, width: int, key: Optional[Tuple[float, float]]) -> np.ndarray:
    return mouth_mask(height, width, key) if blend == "mouth" else feather_mask(height, width)


def blend_mask(blend: str, height: int, width: int,
               mouth: Optional[BoxMouth] = None) -> np.ndarray:
    """The weights of the generated face for blend mode `blend` ("mouth" or "face"); `mouth`
    shapes the "mouth" blend (see `paste_face`)."""
    return _mask(blend, height, width, _mouth_key(blend, mouth))


@functools.lru_cache(maxsize=64)
def _mask_support(blend: str, height: int, width: int,
                  key: Optional[Tuple[float, float]]) -> Tuple[slice, slice, np.ndarray]:
    """The rows and columns of the box where the mask is not 0, and the mask there: outside
    them the paste leaves the frame as it is, so it need not be computed (half the box for
    the mouth blend)."""
    mask = _mask(blend, height, width, key)
    rows, columns = np.flatnonzero(mask.any(axis=(1, 2))), np.flatnonzero(mask.any(axis=(0, 2)))
    if not rows.size:
        return slice(0, 0), slice(0, 0), mask[:0, :0]
    ys, xs = slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1)
    return ys, xs, mask[ys, xs]


def first_face_row(blend: str, face_height: int) -> int:
    """The first row of a `face_height`-row generated face that `paste_face` reads in blend mode
    `blend`, whatever the box: the "mouth" blend's mask is 0 down to the box's middle, and the
    bilinear resize reaches from there at most one row above the face's middle."""
    return face_height // 2 - 1 if blend == "mouth" else 0


def rim_color_shift(region: np.ndarray, face: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The per-channel offset that gives `face` the mean colour of `region` (both float32
    (H, W, 3)) over the rim of `weight`; zero where the mask has no rim."""
    rim = (weight[..., 0] > RIM[0]) & (weight[..., 0] < RIM[1])
    if not rim.any():
        return np.zeros(3, np.float32)
    return region[rim].mean(axis=0) - face[rim].mean(axis=0)


def paste_face(frame: np.ndarray, face: np.ndarray, box: XYXYBox, blend: str = "mouth",
               color_match: bool = False, mouth: Optional[BoxMouth] = None) -> None:
    """Resize `face` (uint8 BGR) to `box` and write it into `frame` in place, as `blend` says,
    with `color_match` (feathered blends only) its colours matched to the frame's at the rim.
    `mouth`: where the detector marked the mouth, as shares of the box (`BoxMouth`); only the
    "mouth" blend uses it. None: the box's whole lower half."""
    if blend not in BLENDS:
        raise ValueError(f"unknown blend '{blend}' (choose from {', '.join(BLENDS)})")
    if color_match and blend == "hard":
        raise ValueError("color_match needs a feathered blend (mouth or face), not 'hard'")
    x1, y1, x2, y2 = box
    face = cv2.resize(face, (x2 - x1, y2 - y1))
    if blend == "hard":
        frame[y1:y2, x1:x2] = face
        return
    ys, xs, weight = _mask_support(blend, y2 - y1, x2 - x1, _mouth_key(blend, mouth))
    target = frame[y1:y2, x1:x2][ys, xs]  # a view: written in place below
    region = target.astype(np.float32)
    face = face[ys, xs].astype(np.float32)
    if color_match:  # the rim lies where the mask is not 0, all of it in the support
        face += rim_color_shift(region, face, weight)
    mixed = region + weight * (face - region)
    target[...] = np.rint(np.clip(mixed, 0, 255)).astype(np.uint8)


def cross_fade(generated: np.ndarray, source: np.ndarray, source_share: float) -> np.ndarray:
    """`source_share` of `source` over `generated` (uint8 frames of one size)."""
    mixed = generated.astype(np.float32) + source_share * (source.astype(np.float32) - generated)
    return np.rint(mixed).astype(np.uint8)
