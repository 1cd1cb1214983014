"""upfirdn2d: upsample by zero insertion, pad, FIR-filter, downsample, every channel on its own.

StyleGAN2 resamples with a separable binomial filter ([1, 3, 3, 1] by default) instead of
nearest or bilinear interpolation, to keep aliasing out of the generated images. The operation is
scipy.signal.upfirdn in 2-D: insert `up - 1` zeros after every sample, pad (a negative pad
crops), convolve with the kernel (a true convolution: the kernel is flipped) and keep every
`down`-th sample.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F


def make_kernel(k: Sequence[float]) -> paddle.Tensor:
    """A 2-D filter of unit sum: the outer product of a 1-D kernel with itself, or a 2-D one."""
    k = np.asarray(k, dtype="float32")
    if k.ndim == 1:
        k = np.outer(k, k)
    return paddle.to_tensor(k / k.sum())


def _insert_zeros(x: paddle.Tensor, up: int, axis: int) -> paddle.Tensor:
    # Stack the samples with up-1 zero planes along a new axis after `axis`, then merge the two.
    zeros = paddle.zeros_like(x)
    stacked = paddle.stack([x] + [zeros] * (up - 1), axis=axis + 1)
    shape = list(x.shape)
    shape[axis] *= up
    shape[0] = -1
    return stacked.reshape(shape)


def _transposed_padding(kernel_size: int, up: int, pad: Tuple[int, int]) -> Optional[List[int]]:
    """The padding of the stride-`up` transposed convolution that equals zero insertion, `pad`
    and the true convolution along one axis (its kernel then unflipped); None where there is
    none (a negative pad, or more padding than the kernel reaches)."""
    before, after = pad
    crop = [kernel_size - 1 - before, kernel_size - up - after]
    return crop if min(before, after, *crop) >= 0 else None


def upfirdn2d(x: paddle.Tensor, kernel: paddle.Tensor, up: int = 1, down: int = 1,
              pad: Tuple[int, int] = (0, 0)) -> paddle.Tensor:
    """Resample (N, C, H, W) by `up` and `down` with `kernel` (kh, kw); `pad` = (before, after)
    for both spatial axes. Output side: (H * up + before + after - kh) // down + 1."""
    _, channels, height, width = x.shape
    x = x.reshape([-1, 1, height, width])  # each channel filtered alone
    rows, columns = (_transposed_padding(k, up, pad) for k in kernel.shape)
    if up > 1 and down == 1 and rows is not None and columns is not None:
        # The same sums without the zeros: a quarter of the work, and no stacked copies.
        x = F.conv2d_transpose(x, kernel.reshape([1, 1] + list(kernel.shape)), stride=up,
                               padding=rows + columns)
        return x.reshape([-1, channels, x.shape[2], x.shape[3]])
    if up > 1:
        x = _insert_zeros(_insert_zeros(x, up, 2), up, 3)
    before, after = pad
    x = F.pad(x, [max(before, 0), max(after, 0)] * 2)
    if before < 0 or after < 0:  # negative pads crop
        h, w = x.shape[2], x.shape[3]
        x = x[:, :, max(-before, 0):h - max(-after, 0), max(-before, 0):w - max(-after, 0)]
    weight = paddle.flip(kernel, [0, 1]).reshape([1, 1] + list(kernel.shape))
    x = F.conv2d(x, weight, stride=down)
    return x.reshape([-1, channels, x.shape[2], x.shape[3]])


class Blur(nn.Layer):
    """A fixed FIR filter with padding `pad`, the smoothing beside every strided or transposed
    conv of StyleGAN2 (`upsample_factor` > 1 scales the kernel to keep the mean after zero
    insertion). The kernel is a buffer outside the state dict, as in both of PaddleGAN's versions.
    """

    def __init__(self, kernel: Sequence[float], pad: Tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor ** 2,
                             persistable=False)
        self.pad = tuple(pad)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Layer):
    """Upsampling by `factor` with the FIR kernel, centred (the skip path of StyleGAN2's ToRGB).

    `persistable=True` puts the kernel in the state dict: PaddleGAN's StyleGANv2Generator (GPEN)
    saves it as `...upsample.kernel`; its GFPGAN decoder does not."""

    def __init__(self, kernel: Sequence[float], factor: int = 2, persistable: bool = False):
        super().__init__()
        self.factor = factor
        kernel = make_kernel(kernel) * factor ** 2
        self.register_buffer("kernel", kernel, persistable=persistable)
        p = kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)
