"""Leaky ReLU with a bias and a gain, StyleGAN2's activation (Karras et al., 2020, "Analyzing and
Improving the Image Quality of StyleGAN").

The sqrt(2) gain keeps the activations' second moment at 1 after the ReLU halves it, which the
equalised learning rate of the layers around it relies on. "Fused" names the CUDA kernel of the
original; here it is three plain ops.
"""
from typing import Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


def fused_leaky_relu(x: paddle.Tensor, bias: Optional[paddle.Tensor] = None,
                     negative_slope: float = 0.2, scale: float = 2 ** 0.5) -> paddle.Tensor:
    """leaky_relu(x + bias) * scale, the bias broadcast along axis 1 (channels or features).

    The default is written without a module name: paddle.jit.to_static re-creates this function
    from its source in a module where `math` is not defined."""
    if bias is not None:
        x = x + bias.reshape([1, -1] + [1] * (x.ndim - 2))
    return F.leaky_relu(x, negative_slope) * scale


class FusedLeakyReLU(nn.Layer):
    """`fused_leaky_relu` with a learned per-channel bias (initialised to 0); `bias=False` keeps
    only the scaled activation."""

    def __init__(self, channels: int, bias: bool = True, negative_slope: float = 0.2,
                 scale: float = 2 ** 0.5):
        super().__init__()
        self.bias = self.create_parameter(
            [channels], default_initializer=nn.initializer.Constant(0.0)) if bias else None
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)


class ScaledLeakyReLU(nn.Layer):
    """leaky_relu(x) * sqrt(2), without a bias (GFPGAN's SFT branches)."""

    def __init__(self, negative_slope: float = 0.2):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return fused_leaky_relu(x, None, self.negative_slope)
