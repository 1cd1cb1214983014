"""PSNR and SSIM of generated vs ground-truth faces (the validation split's reconstruction metrics).

Images are uint8-range arrays (0..255), HWC (or CHW with ``input_order="CHW"``), BGR as OpenCV
reads them. SSIM is scikit-image's ``structural_similarity`` with the settings of Wang et al.
(2004): an 11x11 Gaussian window with sigma 1.5, population covariances, data range 255, averaged
over channels. scikit-image is imported only when SSIM is computed.
"""
from typing import Iterable, List, Union

import numpy as np
import paddle

from .builder import METRICS

__all__ = ["PSNR", "SSIM", "calculate_psnr", "calculate_ssim", "bgr_to_y"]

ArrayLike = Union[np.ndarray, paddle.Tensor]


def _as_numpy(img: ArrayLike) -> np.ndarray:
    return img.numpy() if isinstance(img, paddle.Tensor) else np.asarray(img)


def bgr_to_y(img: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma (16..235) of a 0..255 BGR image, as BasicSR/PaddleGAN compute it."""
    b, g, r = img[..., 0], img[..., 1], img[..., 2]
    return (65.481 * r + 128.553 * g + 24.966 * b) / 255.0 + 16.0


def _prepare(img: ArrayLike, crop_border: int, input_order: str, test_y_channel: bool) -> np.ndarray:
    if input_order not in ("HWC", "CHW"):
        raise ValueError(f"input_order must be 'HWC' or 'CHW', got {input_order!r}")
    img = _as_numpy(img).astype(np.float64)
    if img.ndim == 2:
        img = img[..., None]
    elif input_order == "CHW":
        img = img.transpose(1, 2, 0)
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel and img.shape[2] == 3:
        img = bgr_to_y(img)[..., None]
    return img


def _pair(img1: ArrayLike, img2: ArrayLike, crop_border: int, input_order: str,
          test_y_channel: bool):
    a = _prepare(img1, crop_border, input_order, test_y_channel)
    b = _prepare(img2, crop_border, input_order, test_y_channel)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    return a, b


def calculate_psnr(img1: ArrayLike, img2: ArrayLike, crop_border: int = 0,
                   input_order: str = "HWC", test_y_channel: bool = False) -> float:
    """PSNR in dB for a 255 peak; ``inf`` for identical images."""
    a, b = _pair(img1, img2, crop_border, input_order, test_y_channel)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def calculate_ssim(img1: ArrayLike, img2: ArrayLike, crop_border: int = 0,
                   input_order: str = "HWC", test_y_channel: bool = False) -> float:
    """Mean SSIM over channels (Gaussian window, sigma 1.5, data range 255)."""
    from skimage.metrics import structural_similarity  # optional dependency, needed only here

    a, b = _pair(img1, img2, crop_border, input_order, test_y_channel)
    return float(structural_similarity(a, b, data_range=255.0, channel_axis=2,
                                       gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


class _ImagePairMetric(paddle.metric.Metric):
    """Averages a per-image metric over every (prediction, ground truth) pair seen."""

    def __init__(self, crop_border: int = 0, input_order: str = "HWC", test_y_channel: bool = False):
        super().__init__()
        self.crop_border = crop_border
        self.input_order = input_order
        self.test_y_channel = test_y_channel
        self.results: List[float] = []

    def _compute(self, pred: np.ndarray, gt: np.ndarray) -> float:
        raise NotImplementedError

    def reset(self) -> None:
        self.results = []

    def update(self, preds: Union[ArrayLike, Iterable[ArrayLike]],
               gts: Union[ArrayLike, Iterable[ArrayLike]]) -> None:
        """One image or a batch (a list, or an array with a leading batch axis) of each."""
        preds, gts = self._as_batch(preds), self._as_batch(gts)
        if len(preds) != len(gts):
            raise ValueError(f"{len(preds)} predictions but {len(gts)} ground truths")
        self.results.extend(self._compute(p, g) for p, g in zip(preds, gts))

    def _as_batch(self, images) -> List[np.ndarray]:
        if isinstance(images, (list, tuple)):
            return [_as_numpy(i) for i in images]
        images = _as_numpy(images)
        return list(images) if images.ndim == 4 else [images]

    def accumulate(self) -> float:
        if not self.results:
            raise ValueError(f"{self.name()}: no images were given")
        return float(np.mean(self.results))


@METRICS.register()
class PSNR(_ImagePairMetric):
    def _compute(self, pred: np.ndarray, gt: np.ndarray) -> float:
        return calculate_psnr(pred, gt, self.crop_border, self.input_order, self.test_y_channel)

    def name(self) -> str:
        return "PSNR"


@METRICS.register()
class SSIM(_ImagePairMetric):
    def _compute(self, pred: np.ndarray, gt: np.ndarray) -> float:
        return calculate_ssim(pred, gt, self.crop_border, self.input_order, self.test_y_channel)

    def name(self) -> str:
        return "SSIM"
