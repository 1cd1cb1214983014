"""SSD anchors of the BlazeFace front model, computed as MediaPipe's SsdAnchorsCalculator does.

Computing them removes the need for PaddleGAN's `anchors.npy` download; `load_anchors` still reads
that file for anyone who wants it.
"""
import itertools
import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .net_blazeface import INPUT_SIZE, NUM_ANCHORS


@dataclass(frozen=True)
class AnchorOptions:
    """The part of MediaPipe's SsdAnchorsCalculatorOptions that shapes fixed-size anchors.

    The front model sets `fixed_anchor_size: true`, so every anchor is 1.0 x 1.0 and the
    `min_scale`/`max_scale` options (which only set sizes) do not change the result.
    """

    input_size: int = INPUT_SIZE
    strides: Tuple[int, ...] = (8, 16, 16, 16)
    aspect_ratios: Tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    anchor_offset: float = 0.5


FRONT_MODEL = AnchorOptions()


def _anchors_per_cell(options: AnchorOptions, layers_in_group: int) -> int:
    # MediaPipe merges consecutive layers of equal stride into one feature map; each layer adds one
    # anchor per aspect ratio plus one for the interpolated scale.
    extra = 1 if options.interpolated_scale_aspect_ratio > 0 else 0
    return layers_in_group * (len(options.aspect_ratios) + extra)


def _grid_centres(size: int, offset: float, per_cell: int) -> np.ndarray:
    """(size*size*per_cell, 2) centres [x, y], row by row, each repeated `per_cell` times."""
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    centres = np.stack([(cols + offset) / size, (rows + offset) / size], axis=-1).reshape(-1, 2)
    return np.repeat(centres, per_cell, axis=0)


def generate_anchors(options: AnchorOptions = FRONT_MODEL) -> np.ndarray:
    """(A, 4) float32 anchors `[x_centre, y_centre, w, h]` normalised to the input, in the order
    of the network's outputs (896 for the front model)."""
    centres = []
    for stride, group in itertools.groupby(options.strides):
        size = math.ceil(options.input_size / stride)
        per_cell = _anchors_per_cell(options, len(list(group)))
        centres.append(_grid_centres(size, options.anchor_offset, per_cell))
    centres = np.concatenate(centres)
    sizes = np.ones_like(centres)  # fixed_anchor_size
    return np.concatenate([centres, sizes], axis=1).astype(np.float32)


def load_anchors(path: str) -> np.ndarray:
    """Anchors from an `.npy` file such as PaddleGAN's `anchors.npy`, checked to be (896, 4)."""
    anchors = np.load(path).astype(np.float32)
    if anchors.shape != (NUM_ANCHORS, 4):
        raise ValueError(f"{path} holds anchors of shape {anchors.shape}, expected ({NUM_ANCHORS}, 4)")
    return anchors
