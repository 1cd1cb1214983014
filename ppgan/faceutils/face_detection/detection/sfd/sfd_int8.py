"""S3FD in int8 (`--precision int8`, opt-in, a CPU): exported, calibrated, quantised.

The network's `heads` are exported in the legacy format from a copy Paddle 3.3.1 can trace
(`legacy_traceable`) and quantised by `ppgan.utils.quantization`, calibrated on drawn faces
(`ppgan.data_preparation.synthetic`) over cluttered backgrounds, in frames the sizes of the
pipeline's 360-pixel copies. The frames are deterministic, so an export is the same on every
machine. The program ends before the stride-4 level's max-out, which `SFDDetector` applies.
"""
from typing import List

import cv2
import numpy as np

from .....data_preparation.synthetic import FaceStyle, draw_face
from .....utils.quantization import quantize_layer
from .net_s3fd import IMAGE_SPEC, S3FD, legacy_traceable, network_input

# (height, width): landscape, portrait, 4:3 and square copies, one frame each (abs_max scales
# take the largest activations seen; more frames of the same kind add little).
CALIBRATION_SIZES = ((203, 360), (360, 203), (270, 360), (360, 360))
_CLUTTER = 12  # rectangles behind the face: edges and colours a real background has
_NOISE = 4.0  # sensor noise, in levels of 255


def export_int8(net: S3FD, folder: str, name: str = "s3fd") -> List[str]:
    """Write `folder`/`name`.pdmodel/.pdiparams: `net`'s heads in int8; returns the files."""
    feeds = [{IMAGE_SPEC.name: network_input(frame[None])} for frame in calibration_frames()]
    return quantize_layer(legacy_traceable(net), folder, name, [IMAGE_SPEC], "heads", feeds)


def calibration_frames() -> List[np.ndarray]:
    """RGB frames, each with one drawn face of 35-60 % of its shorter side."""
    frames = []
    for seed, (height, width) in enumerate(CALIBRATION_SIZES):
        rng = np.random.default_rng(seed)
        style = FaceStyle.random(rng)
        frame = np.full((height, width, 3), style.background, np.uint8)
        for _ in range(_CLUTTER):
            corners = rng.integers(0, (width, height, width, height))
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.rectangle(frame, tuple(corners[:2]), tuple(corners[2:]), color, -1)
        size = int(min(height, width) * rng.uniform(0.35, 0.6))
        draw_face(frame, int(rng.integers(0, width - size)), int(rng.integers(0, height - size)),
                  size, float(rng.uniform()), style)
        noisy = frame + rng.normal(0.0, _NOISE, frame.shape)
        frames.append(np.ascontiguousarray(np.clip(noisy, 0, 255).astype(np.uint8)[..., ::-1]))
    return frames
