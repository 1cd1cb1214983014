"""`BlazeFaceDetector`: PaddleGAN's BlazeFace detector behind the common `FaceDetector` interface."""
import logging
from typing import List, Optional, Tuple

import numpy as np
import paddle

from .....utils.device import place_network, resolve_device
from .....utils.download import resolve_weights
from .....utils.weights import load_weights
from ..core import FaceDetector
from .anchors import generate_anchors, load_anchors
from .detect import postprocess, square_region, to_network_input
from .net_blazeface import BlazeFace

logger = logging.getLogger(__name__)

WEIGHTS_URL = "https://paddlegan.bj.bcebos.com/models/blazeface.pdparams"
# MediaPipe's order of the 6 keypoints: the eyes, nose tip, mouth centre, the ear tragions.
MOUTH_KEYPOINT = 3
# BlazeFace marks the mouth's centre only: its half width is taken as this share of the box's
# width. MTCNN's mouth corners on scikit-image's astronaut are 0.49 of its box's width apart,
# and BlazeFace's box is as tight (eyebrows to chin, cheek to cheek).
MOUTH_HALF_WIDTH = 0.24


class BlazeFaceDetector(FaceDetector):
    """BlazeFace front model: fast, for near, frontal faces that fill a good part of the frame.

    By default each frame is padded to a square so faces anywhere are seen (PaddleGAN crops the
    central square on the short side, where a face in a 16:9 frame looks 1.78 times larger but
    faces outside it are missed), and faces come best mean score first. `reference=True` is
    PaddleGAN's detector exactly: the central crop, and its face order (the cluster holding the
    single strongest anchor first), so with two faces it picks the same one. Weights default to
    PaddleGAN's released file; anchors are computed, or read from `path_to_anchors`
    (PaddleGAN's `anchors.npy`) when given. `device`: "cpu", "gpu", "gpu:N", or None for
    Paddle's default device.
    """

    def __init__(self, path_to_detector: Optional[str] = None, device: Optional[str] = None, *,
                 path_to_anchors: Optional[str] = None, min_score_thresh: float = 0.5,
                 min_suppression_threshold: float = 0.3, reference: bool = False,
                 verbose: bool = False):
        # 0.5 is the threshold PaddleGAN's detector sets (its net's own default is 0.75).
        self.min_score_thresh = min_score_thresh
        self.min_suppression_threshold = min_suppression_threshold
        self.reference = reference
        self.verbose = verbose
        self.net = BlazeFace()
        load_weights(self.net, resolve_weights(path_to_detector, WEIGHTS_URL))
        place_network(self.net, resolve_device(device))
        self.net.eval()
        self.anchors = generate_anchors() if path_to_anchors is None else load_anchors(path_to_anchors)
        if path_to_anchors is not None and not np.allclose(self.anchors, generate_anchors(), atol=1e-6):
            logger.warning("anchors in %s differ from the computed front-model anchors", path_to_anchors)

    def raw_outputs(self, images: np.ndarray) -> List[np.ndarray]:
        """Run the network on (N, H, W, 3) uint8 RGB frames: `[raw_boxes, raw_scores]` arrays."""
        batch = to_network_input(images, crop_to_square=self.reference)
        with paddle.no_grad():
            inputs = paddle.to_tensor(batch, place=self.net.classifier_8.weight.place)
            return [out.numpy() for out in self.net(inputs)]

    def detect_faces(self, images: np.ndarray) -> List[np.ndarray]:
        """Per frame (K, 17) float32 rows `[x1, y1, x2, y2, 6 keypoints (x, y), score]` in pixels."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected (N, H, W, 3) RGB frames, got shape {images.shape}")
        if len(images) == 0:
            return []
        raw_boxes, raw_scores = self.raw_outputs(images)
        region = square_region(images.shape[1], images.shape[2], crop_to_square=self.reference)
        faces = postprocess(raw_boxes, raw_scores, self.anchors, region, self.min_score_thresh,
                            self.min_suppression_threshold, by_mean_score=not self.reference)
        if self.verbose:
            logger.info("BlazeFace: %s faces in %d frames", [len(f) for f in faces], len(faces))
        return faces

    def detect_batch(self, images: np.ndarray) -> List[np.ndarray]:
        return [boxes for boxes, _ in self.detect_batch_with_mouths(images)]

    def detect_batch_with_mouths(self, images: np.ndarray) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Boxes (K, 5), best first (or in PaddleGAN's order with `reference`), and their mouths
        (K, 3): the mouth keypoint, `MOUTH_HALF_WIDTH` of the box's width to each side."""
        results = []
        for faces in self.detect_faces(images):
            if not self.reference:
                faces = faces[np.argsort(-faces[:, -1], kind="stable")]
            x = 4 + 2 * MOUTH_KEYPOINT
            half_width = MOUTH_HALF_WIDTH * (faces[:, 2:3] - faces[:, 0:1])
            mouths = np.hstack([faces[:, x:x + 2], half_width]).astype(np.float32)
            results.append((faces[:, [0, 1, 2, 3, -1]].astype(np.float32).reshape(-1, 5), mouths))
        return results
