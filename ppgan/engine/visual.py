"""Sample collages (reference | input | generated | ground truth) and the optional VisualDL log."""
import logging
import os
from typing import Dict

import cv2
import numpy as np
import paddle

logger = logging.getLogger(__name__)


def uint8_frames(image: paddle.Tensor) -> np.ndarray:
    """(B,3,T,H,W) or (B,3,H,W) in [0, 1] -> uint8 (B,T,H,W,3), channels kept (BGR)."""
    array = image.detach().astype("float32").numpy()
    if array.ndim == 4:
        array = array[:, :, None]
    array = np.clip(array.transpose(0, 2, 3, 4, 1) * 255.0 + 0.5, 0, 255)
    return array.astype(np.uint8)


def make_collages(visuals: Dict[str, paddle.Tensor]) -> np.ndarray:
    """One image per sample: a row per frame, the visuals side by side in their dict order."""
    panels = [uint8_frames(image) for image in visuals.values()]
    rows = np.concatenate(panels, axis=3)  # (B, T, H, W * n, 3)
    batch, frames, height, width, _ = rows.shape
    return rows.reshape(batch, frames * height, width, 3)


def save_collages(visuals: Dict[str, paddle.Tensor], folder: str, prefix: str) -> int:
    """Write `<folder>/<prefix>_<b>.jpg` for every sample; returns how many were written."""
    if not visuals:
        return 0
    os.makedirs(folder, exist_ok=True)
    collages = make_collages(visuals)
    for index, collage in enumerate(collages):
        # The images are BGR end to end, which is what cv2 writes.
        cv2.imwrite(os.path.join(folder, f"{prefix}_{index}.jpg"), collage)
    return len(collages)


class ScalarLog:
    """VisualDL scalars when `enable_visualdl` is set and the package is installed."""

    def __init__(self, enabled: bool, logdir: str):
        self._writer = None
        if not enabled:
            return
        try:
            from visualdl import LogWriter
        except ImportError:
            logger.warning("enable_visualdl is set but the visualdl package is not installed "
                           "(pip install visualdl); training goes on without it")
            return
        self._writer = LogWriter(logdir=logdir)

    def add(self, tag_prefix: str, values: Dict[str, float], step: int) -> None:
        if self._writer is None:
            return
        for name, value in values.items():
            self._writer.add_scalar(tag=f"{tag_prefix}/{name}", value=float(value), step=step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

