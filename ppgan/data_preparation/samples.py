"""Inputs made on the fly for the tests and the benchmark: speech-like audio, a real face photo
(scikit-image's astronaut, a test dependency) on a flat background, random generator weights.

Deterministic: the same call gives the same samples on every machine.
"""
from typing import Tuple

import cv2
import numpy as np

from ..utils.atomic import atomic_path

SAMPLE_RATE = 16000
# The astronaut's face in skimage.data.astronaut() (512x512), set once by eye: x1, y1, x2, y2.
ASTRONAUT_FACE = (172, 45, 285, 170)
BACKGROUND = 110  # gray, BGR all equal


def speech_like(seconds: float = 1.3, seed: int = 0) -> np.ndarray:
    """Voiced harmonics under a syllable-rate envelope, plus noise: broad-band like speech
    (float32 at SAMPLE_RATE)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def astronaut_bgr(size: int) -> np.ndarray:
    """The astronaut photo, BGR, resized to size x size."""
    from skimage import data  # late: only the tests and the benchmark have scikit-image

    return cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (size, size),
                      interpolation=cv2.INTER_AREA)


def face_frame(width: int, height: int, face_size: int, x: int, y: int) -> np.ndarray:
    """A width x height BGR frame with the photo (face_size square) at top-left (x, y)."""
    frame = np.full((height, width, 3), BACKGROUND, np.uint8)
    frame[y:y + face_size, x:x + face_size] = astronaut_bgr(face_size)
    return frame


def face_box_in_frame(face_size: int, x: int, y: int) -> Tuple[int, int, int, int]:
    """Where ASTRONAUT_FACE lands in `face_frame(..., face_size, x, y)`: x1, y1, x2, y2."""
    s = face_size / 512
    x1, y1, x2, y2 = ASTRONAUT_FACE
    return int(x + x1 * s), int(y + y1 * s), int(x + x2 * s), int(y + y2 * s)


def save_random_generator(path: str, seed: int = 0) -> str:
    """A Wav2Lip generator's randomly initialised weights (flat state dict) at `path`."""
    import paddle  # late: the audio and frames above need no Paddle

    from ..models.generators import Wav2Lip

    paddle.seed(seed)
    state = {k: v.numpy() for k, v in Wav2Lip().state_dict().items()}
    with atomic_path(path) as partial:
        paddle.save(state, partial)
    return path
