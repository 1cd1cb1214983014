"""BlazeFace pre- and post-processing in NumPy: frames to 128x128 inputs, raw outputs to boxes.

Coordinates inside this module are `[x1, y1, x2, y2, kx0, ky0, ..., kx5, ky5, score]` rows
(17 columns); PaddleGAN's net emits y-first boxes, but x-first matches what callers want.
"""
from typing import List, NamedTuple

import cv2
import numpy as np

from .net_blazeface import INPUT_SIZE, NUM_ANCHORS, NUM_COORDS

SCORE_CLIP = 100.0  # raw logits are clipped to +-100 before the sigmoid, as in the reference
DETECTION_COLUMNS = NUM_COORDS + 1


class SquareRegion(NamedTuple):
    """The square of the original frame the network sees: side length and top-left corner.

    The corner is negative on the padded axis when the frame is padded rather than cropped.
    """

    side: int
    x0: int
    y0: int


def square_region(height: int, width: int, crop_to_square: bool) -> SquareRegion:
    """The central square on the short side (crop, the reference) or around the long side (pad)."""
    if crop_to_square:
        side = min(height, width)
        return SquareRegion(side, (width - side) // 2, (height - side) // 2)
    side = max(height, width)
    return SquareRegion(side, -((side - width) // 2), -((side - height) // 2))


def _crop_like_reference(frame: np.ndarray, dim: int) -> np.ndarray:
    """PaddleGAN's `resize_and_crop_image`: scale the short side to `dim` (long side truncated to
    int, with the reference's float order), then take the central `dim` rows/columns. Kept exact
    so results match the reference."""
    height, width = frame.shape[:2]
    if height > width:
        resized = cv2.resize(frame, (dim, int(height * (dim / width))), interpolation=cv2.INTER_AREA)
        start = (resized.shape[0] - dim) // 2
        return resized[start:start + dim]
    resized = cv2.resize(frame, (int(width * (dim / height)), dim), interpolation=cv2.INTER_AREA)
    start = (resized.shape[1] - dim) // 2
    return resized[:, start:start + dim]


def _pad_and_resize(frame: np.ndarray, region: SquareRegion, dim: int) -> np.ndarray:
    """Pad to the square `region` with black (as MediaPipe's letterboxing) and scale to `dim`;
    padding first keeps the mapping back an exact scale and shift."""
    height, width = frame.shape[:2]
    top, left = -region.y0, -region.x0
    square = cv2.copyMakeBorder(frame, top, region.side - height - top, left,
                                region.side - width - left, cv2.BORDER_CONSTANT, value=0)
    return cv2.resize(square, (dim, dim), interpolation=cv2.INTER_AREA)


def to_network_input(images: np.ndarray, crop_to_square: bool) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, 3, 128, 128) float32 in [-1, 1]."""
    height, width = images.shape[1:3]
    region = square_region(height, width, crop_to_square)
    if crop_to_square:
        small = [_crop_like_reference(frame, INPUT_SIZE) for frame in images]
    else:
        small = [_pad_and_resize(frame, region, INPUT_SIZE) for frame in images]
    batch = np.stack(small).astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def decode_boxes(raw_boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(N, 896, 16) regressions -> (N, 896, 16) `[x1, y1, x2, y2, keypoints...]` in [0, 1] units.

    Offsets are in input pixels (hence / 128) and scaled by the anchor size (1.0 for the front
    model); the whole batch is decoded at once.
    """
    scale = np.tile(anchors[:, 2:4], NUM_COORDS // 2) / INPUT_SIZE  # (896, 16): w, h, w, h, ...
    centre = np.tile(anchors[:, 0:2], NUM_COORDS // 2)  # x, y, x, y, ...
    points = raw_boxes * scale  # box centre offset, box size, keypoint offsets
    decoded = points + centre
    half_size = points[..., 2:4] / 2
    box_centre = decoded[..., 0:2]
    decoded[..., 2:4] = box_centre + half_size  # computed before columns 0:2 are overwritten
    decoded[..., 0:2] = box_centre - half_size
    return decoded


def scores_from_logits(raw_scores: np.ndarray) -> np.ndarray:
    """(N, 896, 1) logits -> (N, 896) probabilities; tanh form avoids exp overflow at -100."""
    logits = np.clip(raw_scores[..., 0].astype(np.float64), -SCORE_CLIP, SCORE_CLIP)
    return (0.5 * (1.0 + np.tanh(0.5 * logits))).astype(np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one `[x1, y1, x2, y2]` box with each row of `boxes`; 0 where the union is empty."""
    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:4], boxes[:, 2:4])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    area = np.prod(np.clip(box[2:4] - box[:2], 0, None))
    areas = np.prod(np.clip(boxes[:, 2:4] - boxes[:, :2], 0, None), axis=1)
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def weighted_nms(detections: np.ndarray, iou_threshold: float) -> np.ndarray:
    """BlazeFace's weighted NMS on (K, 17) rows: each cluster (IoU > threshold with its best row)
    becomes the score-weighted mean of its coordinates, with the mean score of the cluster."""
    remaining = np.argsort(-detections[:, -1], kind="stable")
    merged = []
    while remaining.size:
        in_cluster = _iou(detections[remaining[0], :4], detections[remaining, :4]) > iou_threshold
        in_cluster[0] = True  # a degenerate best box (IoU 0 with itself) must still be consumed
        cluster = detections[remaining[in_cluster]]
        remaining = remaining[~in_cluster]
        weights = cluster[:, -1:]
        row = np.empty(DETECTION_COLUMNS, dtype=np.float32)
        row[:-1] = (cluster[:, :-1] * weights).sum(axis=0) / weights.sum()
        row[-1] = weights.mean()
        merged.append(row)
    return np.stack(merged) if merged else np.zeros((0, DETECTION_COLUMNS), np.float32)


def to_frame_coordinates(detections: np.ndarray, region: SquareRegion) -> np.ndarray:
    """Map (K, 17) rows from [0, 1] input units to pixels of the original frame."""
    out = detections.copy()
    out[:, 0:NUM_COORDS:2] = detections[:, 0:NUM_COORDS:2] * region.side + region.x0
    out[:, 1:NUM_COORDS:2] = detections[:, 1:NUM_COORDS:2] * region.side + region.y0
    return out


def postprocess(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
                region: SquareRegion, min_score_thresh: float,
                min_suppression_threshold: float, by_mean_score: bool = True) -> List[np.ndarray]:
    """Raw network outputs for a batch -> per frame (K, 17) float32 rows in frame pixels.

    Faces are ordered by their merged (mean) score, or with `by_mean_score=False` as PaddleGAN
    leaves them: in the order of each cluster's strongest anchor, so its first face is the one
    holding the single most confident anchor.
    """
    if raw_boxes.shape[1:] != (NUM_ANCHORS, NUM_COORDS) or raw_scores.shape[1:] != (NUM_ANCHORS, 1):
        raise ValueError(f"unexpected BlazeFace outputs {raw_boxes.shape} and {raw_scores.shape}")
    boxes = decode_boxes(raw_boxes.astype(np.float32), anchors)
    scores = scores_from_logits(raw_scores)
    results = []
    for frame_boxes, frame_scores in zip(boxes, scores):
        keep = frame_scores >= min_score_thresh
        candidates = np.concatenate([frame_boxes[keep], frame_scores[keep, None]], axis=1)
        faces = weighted_nms(candidates, min_suppression_threshold)
        if by_mean_score:
            faces = faces[np.argsort(-faces[:, -1], kind="stable")]  # merging can reorder scores
        results.append(to_frame_coordinates(faces, region).astype(np.float32))
    return results
