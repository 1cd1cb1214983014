"""Face enhancement (GPEN or GFPGAN) in the Wav2Lip pipeline, on batches of BGR frames.

Two placements:
- "frame" (default): after the new mouth is pasted in, the face's square crop of the frame is
  restored and blended back. The network sees a real face with a soft mouth, at the resolution
  of the frame, and the eyes and skin around the mouth stay consistent with it.
- "generated" (PaddleGAN's): the generator's 96-px face is restored at the network's size and
  pasted instead of it (with the channel order fixed: PaddleGAN feeds the BGR face as it is).
Both networks were trained on RGB faces: frames are converted on the way in and out.
"""
from typing import List, Optional

import cv2
import numpy as np

from ..faceutils.face_enhancement import ENHANCERS, Enhancer
from ..utils.download import resolve_weights
from ..utils.video import InputError
from ..utils.weights import OtherNetworkError

PLACEMENTS = ("frame", "generated")
CROP_GROWTH = 1.2  # the square crop's side over the box's longer side: the whole head, as in FFHQ
ENHANCER_BATCH = 4  # faces per network call: the pipeline's steps are 16 frames on a CPU


def enhancer_weights(name: str, path: Optional[str]) -> str:
    """The local file of the `name` enhancer's weights (`path`, None: the default, downloaded
    if missing)."""
    enhancer = ENHANCERS[name]
    if path is None and not enhancer.URL:
        raise InputError(f"--enhancer {name} has no default weights: give --enhancer_path (a "
                         "PyTorch file converted by tools/convert_weights.py)")
    try:
        return resolve_weights(path, enhancer.URL)
    except FileNotFoundError as err:
        raise InputError(f"--enhancer_path: {err}") from None


def load_enhancer(name: str, path: Optional[str], engine: str, device: str,
                  cpu_threads: int, precision: str = "fp32") -> Enhancer:
    """The `name` enhancer (an ENHANCERS key) at the size its weights (`path`, None: the
    default download) were made for."""
    enhancer = ENHANCERS[name]
    path = enhancer_weights(name, path)
    try:
        return enhancer(path, size=None, batch_size=ENHANCER_BATCH, engine=engine,
                        device=device, cpu_threads=cpu_threads, precision=precision)
    except OtherNetworkError as err:
        fitting = [other for other, cls in ENHANCERS.items() if cls.NETWORK == err.found]
        if not fitting:
            raise
        raise InputError(f"--enhancer_path: {err}: use --enhancer {fitting[0]}") from None


def square_crop(box: np.ndarray, height: int, width: int) -> tuple:
    """(x1, y1, x2, y2): a square CROP_GROWTH times the box's longer side around its centre,
    moved inside the frame, and cut by the frame only where the frame is smaller."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = min(int(round(max(x2 - x1, y2 - y1) * CROP_GROWTH)), height, width)
    left = int(round((x1 + x2 - side) / 2))
    top = int(round((y1 + y2 - side) / 2))
    left, top = min(max(left, 0), width - side), min(max(top, 0), height - side)
    return left, top, left + side, top + side


def _resize(image: np.ndarray, size: tuple) -> np.ndarray:
    """cv2.resize to (w, h): area averaging to shrink, bicubic to grow."""
    grow = size[0] > image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA)


def _edge_free_mask(enhancer: Enhancer, side: int) -> np.ndarray:
    """The enhancer's blend mask at `side` px, stretched to reach exactly 0 at the crop's edge,
    so the pixels around the crop are the frame's own."""
    mask = cv2.resize(enhancer.mask[..., 0], (side, side), interpolation=cv2.INTER_AREA)
    edge = min(mask[0].min(), mask[-1].min(), mask[:, 0].min(), mask[:, -1].min())
    return np.clip((mask - edge) / (mask.max() - edge), 0, 1)[..., None]


def enhance_frames(enhancer: Enhancer, frames: List[np.ndarray], boxes: np.ndarray) -> None:
    """Restore the face around each box in its (BGR, uint8) frame, in place, in one batch."""
    crops = [square_crop(box, *frame.shape[:2]) for frame, box in zip(frames, boxes)]
    size = (enhancer.size, enhancer.size)
    faces = np.stack([_resize(frame[y1:y2, x1:x2], size)[..., ::-1]
                      for frame, (x1, y1, x2, y2) in zip(frames, crops)])
    restored = enhancer.restore(faces)[..., ::-1]
    for frame, face, (x1, y1, x2, y2) in zip(frames, restored, crops):
        region = frame[y1:y2, x1:x2].astype(np.float32)
        face = _resize(np.ascontiguousarray(face), (x2 - x1, y2 - y1)).astype(np.float32)
        weight = _edge_free_mask(enhancer, x2 - x1)
        frame[y1:y2, x1:x2] = np.rint(region + weight * (face - region)).astype(np.uint8)


def enhance_generated(enhancer: Enhancer, faces: np.ndarray) -> np.ndarray:
    """PaddleGAN's placement: the generated (N, 96, 96, 3) BGR faces restored (RGB to the
    network) and blended as its `enhance_from_batch` does, at the network's size, uint8 BGR."""
    restored = enhancer.enhance_from_batch(np.ascontiguousarray(faces[..., ::-1]))
    return np.rint(restored[..., ::-1]).astype(np.uint8)
