"""Equalised learning rate layers (Karras et al., 2018, "Progressive Growing of GANs", sec. 4.1).

Weights are stored N(0, 1) and scaled by He's constant 1/sqrt(fan_in) at every forward, so Adam's
per-parameter step sizes act alike on every layer. A linear layer's `lr_mul` also divides the
stored weight (and multiplies the scale and the bias), making its effective learning rate
`lr_mul` times the others' (StyleGAN's mapping network uses 0.01).

Parameter layouts are PaddleGAN's: a linear weight is [in, out] (Paddle's F.linear), a conv
weight [out, in, k, k].
"""
import math
from typing import Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .fused_act import fused_leaky_relu


class EqualLinear(nn.Layer):
    """y = x @ (W * scale) + b * lr_mul, followed by the biased leaky ReLU when
    `activation="fused_lrelu"`."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: Optional[str] = None):
        super().__init__()
        if activation not in (None, "fused_lrelu"):
            raise ValueError(f"unknown activation {activation!r}")
        self.weight = self.create_parameter([in_dim, out_dim],
                                            default_initializer=nn.initializer.Normal())
        self.weight.set_value(self.weight / lr_mul)
        self.bias = self.create_parameter(
            [out_dim], default_initializer=nn.initializer.Constant(bias_init)) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2D(nn.Layer):
    """A conv whose weight is scaled by 1/sqrt(in * k * k) at run time."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, bias_init: float = 0.0):
        super().__init__()
        self.weight = self.create_parameter([out_channels, in_channels, kernel_size, kernel_size],
                                            default_initializer=nn.initializer.Normal())
        self.bias = (self.create_parameter([out_channels],
                                           default_initializer=nn.initializer.Constant(bias_init))
                     if bias else None)
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)
