"""Anchors, box decoding and NMS for S3FD, vectorised in NumPy.

The reference (face_alignment / PaddleGAN `detect.py`) decodes one anchor at a time in Python;
here every anchor of every level is laid out in one array and decoded at once.
"""
from typing import List, Sequence, Tuple

import numpy as np

STRIDES: Tuple[int, ...] = (4, 8, 16, 32, 64, 128)
ANCHOR_SCALE = 4  # anchor side = 4 * stride
VARIANCES: Tuple[float, float] = (0.1, 0.2)
CONF_THRESHOLD = 0.05  # candidate anchors
NMS_THRESHOLD = 0.3
SCORE_THRESHOLD = 0.5  # boxes reported


def level_priors(height: int, width: int, stride: int) -> np.ndarray:
    """(height*width, 4) priors [cx, cy, w, h] of one level, row-major like a flattened map."""
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    size = float(ANCHOR_SCALE * stride)
    return np.stack([stride / 2 + xs.ravel() * stride, stride / 2 + ys.ravel() * stride,
                     np.full(xs.size, size), np.full(xs.size, size)], axis=1).astype(np.float32)


def flatten_heads(outputs: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """12 head maps [conf, loc, ...] (conf already softmaxed) -> all anchors of all levels.

    Returns face scores (N, A), loc offsets (N, A, 4) and priors (A, 4), A summed over levels.
    """
    if len(outputs) != 2 * len(STRIDES):
        raise ValueError(f"expected {2 * len(STRIDES)} head outputs, got {len(outputs)}")
    scores, locs, priors = [], [], []
    for level, stride in enumerate(STRIDES):
        conf, loc = np.asarray(outputs[2 * level]), np.asarray(outputs[2 * level + 1])
        batch, _, height, width = conf.shape
        scores.append(conf[:, 1].reshape(batch, -1))
        locs.append(loc.transpose(0, 2, 3, 1).reshape(batch, -1, 4))
        priors.append(level_priors(height, width, stride))
    return (np.concatenate(scores, axis=1), np.concatenate(locs, axis=1),
            np.concatenate(priors, axis=0))


def decode(loc: np.ndarray, priors: np.ndarray,
           variances: Sequence[float] = VARIANCES) -> np.ndarray:
    """Offsets (..., 4) [dx, dy, dw, dh] relative to priors (..., 4) -> boxes (..., 4) [x1, y1, x2, y2]."""
    centre = priors[..., :2] + loc[..., :2] * variances[0] * priors[..., 2:]
    size = priors[..., 2:] * np.exp(loc[..., 2:] * variances[1])
    top_left = centre - size / 2
    return np.concatenate([top_left, top_left + size], axis=-1)


def nms(dets: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS on (K, 5) [x1, y1, x2, y2, score]; indices kept, highest score first.

    Areas use the reference's inclusive-pixel convention (+1), so overlaps match it exactly.
    Ties keep the earlier row first (stable sort).
    """
    x1, y1, x2, y2, scores = (dets[:, i] for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = width * height
        iou = overlap / (areas[best] + areas[rest] - overlap)
        order = rest[iou <= threshold]
    return np.asarray(keep, dtype=np.int64)


def image_detections(scores: np.ndarray, loc: np.ndarray, priors: np.ndarray,
                     conf_threshold: float = CONF_THRESHOLD, nms_threshold: float = NMS_THRESHOLD,
                     score_threshold: float = SCORE_THRESHOLD) -> np.ndarray:
    """One image's anchors (A,), (A, 4), (A, 4) -> (K, 5) float32 boxes, highest score first.

    The reference keeps anchors above `conf_threshold`, runs NMS, then drops boxes at or below
    `score_threshold`. Greedy NMS decides each box from higher-scored boxes only, so dropping
    the low boxes before NMS gives the same boxes, without an O(K^2) NMS over thousands of
    weak candidates.
    """
    candidates = np.flatnonzero(scores > max(conf_threshold, score_threshold))
    boxes = decode(loc[candidates], priors[candidates])
    dets = np.concatenate([boxes, scores[candidates, None]], axis=1).astype(np.float32)
    return dets[nms(dets, nms_threshold)]


def detections_from_heads(outputs: Sequence[np.ndarray], **thresholds) -> List[np.ndarray]:
    """12 head maps (conf softmaxed) of a batch -> per image (K, 5) float32 boxes, best first."""
    scores, loc, priors = flatten_heads(outputs)
    return [image_detections(scores[i], loc[i], priors, **thresholds) for i in range(len(scores))]
