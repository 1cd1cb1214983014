"""`SFDDetector`: S3FD on whole frames, at their full resolution, as Wav2Lip runs it."""
import logging
import os
from typing import List, Optional

import numpy as np
import paddle
import paddle.nn.functional as F


from .....utils.device import place_network, place_of, resolve_device, resolve_precision
from .....utils.download import resolve_weights
from .....utils.static_graph import StaticModel, cached_export, export_layer
from .....utils.weights import load_weights
from ..core import FaceDetector
from .bbox import detections_from_heads
from .net_s3fd import IMAGE_SPEC, S3FD, network_input

logger = logging.getLogger(__name__)

S3FD_URL = "https://paddlegan.bj.bcebos.com/models/s3fd_paddle.pdparams"
# Frames per network call on a CPU: on the machines this was tuned on, batching did not speed
# S3FD up there, while its activations (memory) grow with the batch.
# tools/benchmark_wav2lip.py measures the detector's speed (figures: README).
CPU_BATCH = 1


class SFDDetector(FaceDetector):
    """S3FD face detector.

    path_to_detector: a local `.pdparams`, an http(s) URL, or None for PaddleGAN's released
    weights (downloaded once into the ppgan cache). device: "cpu", "gpu", "gpu:N", or None for
    Paddle's default device.
    engine: "static" runs an exported copy through Paddle Inference (faster, with its fusion
    passes; exported once per weights file); "eager" runs the network in dygraph, the reference.
    precision: the static engine's (`ppgan.utils.device.resolve_precision`); bf16 ran S3FD twice
    as fast as fp32 on an AVX-512 BF16 CPU. int8 (opt-in) is quantised on first use
    (`sfd_int8`, about 10 s on 2 cores; cached beside the other exports).
    """

    def __init__(self, path_to_detector: Optional[str] = None, device: Optional[str] = None,
                 engine: str = "static", precision: str = "fp32", **kwargs):
        if kwargs:  # FaceAlignment passes options meant for other detectors too
            logger.debug("SFDDetector ignores options %s", sorted(kwargs))
        self.device = resolve_device(device)
        weights = resolve_weights(path_to_detector, S3FD_URL)
        # The static engine builds the network only to export it (half a second of start-up).
        self.net = self._static = None
        # The int8 program ends before the stride-4 level's max-out (`sfd_int8`).
        self._max_out = False
        if engine == "static":
            precision = resolve_precision(precision, self.device)
            self._max_out = precision == "int8"
            folder = cached_export(weights, "s3fd-int8" if self._max_out else "s3fd",
                                   lambda staging: self._export(weights, staging, precision))
            self._static = StaticModel(os.path.join(folder, "s3fd"), device=self.device,
                                       precision=precision)
        else:
            self.net = self._loaded(weights)
        logger.info("S3FD weights loaded from %s", weights)

    def _export(self, weights: str, folder: str, precision: str) -> None:
        if precision == "int8":
            from .sfd_int8 import export_int8  # late: calibration imports much

            export_int8(self._loaded(weights), folder)
        else:
            export_layer(self._loaded(weights), os.path.join(folder, "s3fd"), [IMAGE_SPEC])

    def _loaded(self, weights: str) -> S3FD:
        net = S3FD()
        load_weights(net, weights)
        place_network(net, self.device)
        net.eval()
        return net

    def detect_batch(self, images: np.ndarray) -> List[np.ndarray]:
        images = _check_frames(images)
        step = CPU_BATCH if self.device == "cpu" else max(1, len(images))
        return [detections for start in range(0, len(images), step)
                for detections in detections_from_heads(self._head_outputs(images[start:start + step]))]

    def _head_outputs(self, images: np.ndarray) -> List[np.ndarray]:
        """The 12 head maps as NumPy, conf maps softmaxed: copied off the device once each."""
        batch = network_input(images)
        if self._static is not None:
            outputs = self._static(batch)
            if self._max_out:
                outputs[0] = _max_out_background(outputs[0])
            return [_softmax(o) if i % 2 == 0 else o for i, o in enumerate(outputs)]
        with paddle.no_grad():
            outputs = self.net(paddle.to_tensor(batch, place=place_of(self.device)))
            outputs = [F.softmax(o, axis=1) if i % 2 == 0 else o for i, o in enumerate(outputs)]
            return [o.numpy() for o in outputs]


def _max_out_background(conf: np.ndarray) -> np.ndarray:
    """`net_s3fd.max_out_background` on (N, 4, H, W) NumPy logits."""
    return np.concatenate([conf[:, :3].max(axis=1, keepdims=True), conf[:, 3:]], axis=1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _check_frames(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected frames shaped (N, H, W, 3), got {images.shape}")
    return images
