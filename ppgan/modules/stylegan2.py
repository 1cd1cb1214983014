"""StyleGAN2's layers (Karras et al., 2020, "Analyzing and Improving the Image Quality of
StyleGAN"), shared by the GPEN and GFPGAN face restorers.

Parameter names follow PaddleGAN's so its released weights load: every layer here names its
parameters as both of PaddleGAN's copies of StyleGAN2 do (`weight`, `bias`, `modulation`); the
two copies differ only in how their decoders name the layers that hold these, which the
decoders themselves (ppgan/models/generators) reproduce.
"""
import math
import random
from typing import List, Optional, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .equalized import EqualConv2D, EqualLinear
from .fused_act import FusedLeakyReLU, ScaledLeakyReLU
from .upfirdn2d import Blur


class PixelNorm(nn.Layer):
    """Normalises each latent z to unit RMS over its features before the mapping network."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * paddle.rsqrt(paddle.mean(x * x, axis=1, keepdim=True) + 1e-8)


def mapping_network(style_dim: int, n_mlp: int, lr_mlp: float) -> nn.Sequential:
    """z -> w: PixelNorm, then `n_mlp` equalised linear layers with leaky ReLUs at `lr_mlp`
    (indices 1..n_mlp in the state dict)."""
    return nn.Sequential(PixelNorm(), *[
        EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu")
        for _ in range(n_mlp)])


class ModulatedConv2D(nn.Layer):
    """A conv whose weight is scaled per sample by a style, w' = w * s over the input channels,
    then renormalised to unit L2 norm per output channel ("weight demodulation", StyleGAN2
    sec. 2.2, eq. 1-3); optionally upsampling x2 by a transposed conv followed by the FIR blur.

    Parameters: `weight` [1, out, in, k, k] and `modulation` (style_dim -> in, bias 1). The ops
    are PaddleGAN's, in its order (even w'.pow(2), which rounds differently from w' * w'), so
    outputs agree with its networks' to float32 rounding. `fused = False` computes the same
    function in StyleGAN2's non-fused form (`unfused_modulated_conv2d`), for exported programs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), eps: float = 1e-8):
        super().__init__()
        self.weight = self.create_parameter(
            [1, out_channels, in_channels, kernel_size, kernel_size],
            default_initializer=nn.initializer.Normal())
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.demodulate = demodulate
        self.upsample = upsample
        self.eps = eps
        self.padding = kernel_size // 2
        self.fused = True  # False: the non-fused form (`unfuse_modulated_convs`)
        if upsample:
            # The transposed conv (stride 2, no padding) gives 2H + k - 2 samples; the blur's
            # padding brings them back to 2H, centred.
            p = (len(blur_kernel) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)

    def forward(self, x: paddle.Tensor, style: paddle.Tensor) -> paddle.Tensor:
        if not self.fused:
            return self._forward_unfused(x, style)
        batch, in_ch = x.shape[:2]
        s = self.modulation(style).reshape([batch, 1, in_ch, 1, 1])
        weight = self.scale * self.weight * s  # [B, out, in, k, k]
        if self.demodulate:
            weight = demodulated(weight, self.eps)
        if not self.upsample:
            return per_sample_conv2d(x, weight, self.padding)
        out_ch, k = weight.shape[1], weight.shape[3]
        x = x.reshape([1, batch * in_ch, x.shape[2], x.shape[3]])
        weight = weight.transpose([0, 2, 1, 3, 4]).reshape([batch * in_ch, out_ch, k, k])
        out = F.conv2d_transpose(x, weight, stride=2, groups=batch)
        return self.blur(out.reshape([batch, out_ch, out.shape[2], out.shape[3]]))

    def _forward_unfused(self, x: paddle.Tensor, style: paddle.Tensor) -> paddle.Tensor:
        s = self.modulation(style)
        weight = self.scale * self.weight[0]
        if not self.upsample:
            return unfused_modulated_conv2d(x, s, weight, self.padding, self.demodulate, self.eps)
        out = F.conv2d_transpose(x * s.unsqueeze([2, 3]), weight.transpose([1, 0, 2, 3]), stride=2)
        out = self.blur(out)
        return demodulate_output(out, s, weight, self.eps) if self.demodulate else out


def demodulated(weight: paddle.Tensor, eps: float = 1e-8) -> paddle.Tensor:
    """Per-sample weights [B, out, in, k, k] scaled to unit L2 norm per output channel (weight
    demodulation, StyleGAN2 eq. 3)."""
    demod = paddle.rsqrt(weight.pow(2).sum([2, 3, 4]) + eps)
    return weight * demod.reshape([weight.shape[0], weight.shape[1], 1, 1, 1])


def per_sample_conv2d(x: paddle.Tensor, weight: paddle.Tensor, padding: int) -> paddle.Tensor:
    """Convolves each sample of x [B, in, H, W] with its own weight [B, out, in, k, k], in one
    grouped conv: the samples become the groups."""
    batch, in_ch, height, width = x.shape
    out_ch, k = weight.shape[1], weight.shape[3]
    out = F.conv2d(x.reshape([1, batch * in_ch, height, width]),
                   weight.reshape([batch * out_ch, in_ch, k, k]), padding=padding, groups=batch)
    return out.reshape([batch, out_ch, out.shape[2], out.shape[3]])


def unfused_modulated_conv2d(x: paddle.Tensor, s: paddle.Tensor, weight: paddle.Tensor,
                             padding: int, demodulate: bool, eps: float) -> paddle.Tensor:
    """The modulated conv as StyleGAN2's non-fused form: the input scaled by the style s [B, in],
    one conv with the shared weight [out, in, k, k], the output scaled by the demodulation.
    Equal to the per-sample form up to float32 rounding (about 1e-5 after GPEN-512's layers), and
    a plain conv, which oneDNN computes right where it gets the grouped form wrong (Paddle 3.3.1)."""
    out = F.conv2d(x * s.unsqueeze([2, 3]), weight, padding=padding)
    return demodulate_output(out, s, weight, eps) if demodulate else out


def demodulate_output(out: paddle.Tensor, s: paddle.Tensor, weight: paddle.Tensor,
                      eps: float) -> paddle.Tensor:
    """`out` [B, out, H, W] of the non-fused form times each sample's demodulation, the
    rsqrt of sum over in, k, k of (weight * s)^2 + eps."""
    squares = paddle.matmul(s * s, weight.pow(2).sum([2, 3]), transpose_y=True)  # [B, out]
    return out * paddle.rsqrt(squares + eps).unsqueeze([2, 3])


def unfuse_modulated_convs(net: nn.Layer) -> nn.Layer:
    """Switch every modulated conv of `net` (the layers with a `fused` flag) to the non-fused
    form, for the exported programs that oneDNN runs; eager networks keep PaddleGAN's form."""
    for layer in net.sublayers(include_self=True):
        if hasattr(layer, "fused"):
            layer.fused = False
    return net


def inject_noise(x: paddle.Tensor, strength: paddle.Tensor, noise: Optional[paddle.Tensor] = None,
                 concat: bool = False) -> paddle.Tensor:
    """x + strength * noise, or GPEN's [x, strength * noise] along the channels (its "noise" is
    the encoder's feature map). Without `noise`, a fresh N(0, 1) map of one channel is drawn."""
    if noise is None:
        noise = paddle.randn([x.shape[0], 1, x.shape[2], x.shape[3]], dtype=x.dtype)
    if concat:
        return paddle.concat([x, strength * noise], axis=1)
    return x + strength * noise


class NoiseInjection(nn.Layer):
    """`inject_noise` with a learned scalar strength `weight`, initialised to 0."""

    def __init__(self, is_concat: bool = False):
        super().__init__()
        self.weight = self.create_parameter([1], default_initializer=nn.initializer.Constant(0.0))
        self.is_concat = is_concat

    def forward(self, x: paddle.Tensor, noise: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        return inject_noise(x, self.weight, noise, self.is_concat)


class ConstantInput(nn.Layer):
    """The learned 4x4 tensor the synthesis network starts from. `param_name` is the name the
    checkpoint gives it (`input` in PaddleGAN's StyleGANv2Generator, `weight` in GFPGAN's)."""

    def __init__(self, channels: int, size: int = 4, param_name: str = "weight"):
        super().__init__()
        self._param_name = param_name
        self.add_parameter(param_name, self.create_parameter(
            [1, channels, size, size], default_initializer=nn.initializer.Normal()))

    def forward(self, batch: int) -> paddle.Tensor:
        return getattr(self, self._param_name).tile([batch, 1, 1, 1])


def noise_resolutions(log_size: int) -> List[int]:
    """The side of each synthesis layer's noise map: 4, then two per resolution up to
    2**log_size."""
    return [2 ** ((i + 5) // 2) for i in range((log_size - 2) * 2 + 1)]


def latents_per_layer(styles: List[paddle.Tensor], n_latent: int,
                      inject_index: Optional[int] = None) -> paddle.Tensor:
    """[B, n_latent, D]: one w for every layer. A single [B, D] style is repeated; a [B, n, D]
    one is used as it is (W+); two styles mix, the first for layers below `inject_index`
    (random when not given, as in StyleGAN's mixing regularisation)."""
    if len(styles) == 1:
        style = styles[0]
        return style if style.ndim == 3 else style.unsqueeze(1).tile([1, n_latent, 1])
    if len(styles) != 2:
        raise ValueError(f"one or two styles, not {len(styles)}")
    if inject_index is None:
        inject_index = random.randint(1, n_latent - 1)
    first = styles[0].unsqueeze(1).tile([1, inject_index, 1])
    second = styles[1].unsqueeze(1).tile([1, n_latent - inject_index, 1])
    return paddle.concat([first, second], axis=1)


def truncate(styles: List[paddle.Tensor], truncation: float,
             truncation_latent: Optional[paddle.Tensor]) -> List[paddle.Tensor]:
    """The truncation trick: pull each w towards the mean w by `truncation` (1 leaves it)."""
    if truncation >= 1:
        return styles
    if truncation_latent is None:
        raise ValueError("truncation < 1 needs truncation_latent (the mean w)")
    return [truncation_latent + truncation * (style - truncation_latent) for style in styles]


class ConvLayer(nn.Sequential):
    """StyleGAN2 discriminator conv: [FIR blur, when downsampling], an equalised conv (stride 2
    when downsampling), and the activation: biased leaky ReLU, or the bias-free scaled one when
    `bias=False`; without activation the conv carries the bias.

    The sequence indices (0 = blur or conv, ...) are the state dict's, as in PaddleGAN.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 downsample: bool = False, blur_kernel: Sequence[float] = (1, 3, 3, 1),
                 bias: bool = True, activate: bool = True):
        layers = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2D(in_channels, out_channels, kernel_size, stride=stride,
                                  padding=padding, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU(0.2))
        super().__init__(*layers)


class ResBlock(nn.Layer):
    """Two 3x3 ConvLayers (the second halving the resolution) plus a 1x1 strided skip, summed
    and divided by sqrt(2) to keep the variance."""

    def __init__(self, in_channels: int, out_channels: int,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True,
                               blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True,
                              blur_kernel=blur_kernel, bias=False, activate=False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)
