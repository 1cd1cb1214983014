"""StyleGAN2's generator (Karras et al., 2020) as PaddleGAN's `StyleGANv2Generator` names it, with
GPEN's variant: `is_concat=True` concatenates a feature map to every layer instead of adding noise.

Layout: mapping network `style` (z -> w), constant 4x4 `input`, then per resolution from 8 to
`size` an upsampling StyledConv, a StyledConv and a ToRGB whose outputs are summed up the
resolutions (the skip architecture of StyleGAN2 fig. 7).
"""
import math
from typing import List, Optional, Sequence, Tuple

import paddle
import paddle.nn as nn

from ...modules.fused_act import FusedLeakyReLU
from ...modules.stylegan2 import (ConstantInput, ModulatedConv2D, NoiseInjection,
                                  latents_per_layer, mapping_network, noise_resolutions, truncate)
from ...modules.upfirdn2d import Upsample


def stylegan2_channels(channel_multiplier: int, narrow: float = 1.0) -> dict:
    """Feature channels per resolution: 512 up to 32x32, then halving from 64x64 on."""
    wide = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier,
            128: 128 * channel_multiplier, 256: 64 * channel_multiplier,
            512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
    return {res: int(c * narrow) for res, c in wide.items()}


def channel_multiplier_of(size: int, channels: int, narrow: float, default: int) -> int:
    """The channel_multiplier that gives `channels` at resolution `size`; below 64x64, where it
    changes no layer, `default`."""
    if size < 64:
        return default
    return round(channels / (stylegan2_channels(1)[size] * narrow))


class StyledConv(nn.Layer):
    """Modulated conv -> noise (or GPEN's concatenated features) -> biased leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 upsample: bool = False, blur_kernel: Sequence[float] = (1, 3, 3, 1),
                 is_concat: bool = False):
        super().__init__()
        self.conv = ModulatedConv2D(in_channels, out_channels, kernel_size, style_dim,
                                    upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection(is_concat=is_concat)
        self.activate = FusedLeakyReLU(out_channels * 2 if is_concat else out_channels)

    def forward(self, x: paddle.Tensor, style: paddle.Tensor,
                noise: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Layer):
    """1x1 modulated conv to RGB (no demodulation) plus a bias, added to the upsampled RGB of the
    resolution below."""

    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel, persistable=True)
        self.conv = ModulatedConv2D(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = self.create_parameter([1, 3, 1, 1],
                                          default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x: paddle.Tensor, style: paddle.Tensor,
                skip: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class StyleGANv2Generator(nn.Layer):
    """The synthesis network for `size` x `size` images from `style_dim`-d codes."""

    def __init__(self, size: int, style_dim: int, n_mlp: int, channel_multiplier: int = 2,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), lr_mlp: float = 0.01,
                 is_concat: bool = False, narrow: float = 1.0):
        super().__init__()
        self.size = size
        self.style_dim = style_dim
        self.log_size = int(math.log(size, 2))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_latent = self.log_size * 2 - 2
        self.is_concat = is_concat
        self.channels = stylegan2_channels(channel_multiplier, narrow)
        widen = 2 if is_concat else 1  # a concatenated feature map doubles every layer's input

        self.style = mapping_network(style_dim, n_mlp, lr_mlp)
        ch = self.channels[4]
        self.input = ConstantInput(ch, param_name="input")
        self.conv1 = StyledConv(ch, ch, 3, style_dim, blur_kernel=blur_kernel, is_concat=is_concat)
        self.to_rgb1 = ToRGB(ch * widen, style_dim, upsample=False)

        self.convs = nn.LayerList()
        self.to_rgbs = nn.LayerList()
        in_ch = ch
        for log_res in range(3, self.log_size + 1):
            out_ch = self.channels[2 ** log_res]
            self.convs.append(StyledConv(in_ch * widen, out_ch, 3, style_dim, upsample=True,
                                         blur_kernel=blur_kernel, is_concat=is_concat))
            self.convs.append(StyledConv(out_ch * widen, out_ch, 3, style_dim,
                                         blur_kernel=blur_kernel, is_concat=is_concat))
            self.to_rgbs.append(ToRGB(out_ch * widen, style_dim))
            in_ch = out_ch

        # Fixed noise maps for `randomize_noise=False`, saved with the weights.
        self.noises = nn.Layer()
        for i, res in enumerate(noise_resolutions(self.log_size)):
            self.noises.register_buffer(f"noise_{i}", paddle.randn([1, 1, res, res]))

    def mean_latent(self, n_latent: int) -> paddle.Tensor:
        """The mean w of `n_latent` random z: the centre the truncation trick pulls towards."""
        return self.style(paddle.randn([n_latent, self.style_dim])).mean(0, keepdim=True)

    def forward(self, styles: List[paddle.Tensor], return_latents: bool = False,
                inject_index: Optional[int] = None, truncation: float = 1.0,
                truncation_latent: Optional[paddle.Tensor] = None, input_is_latent: bool = False,
                noise: Optional[List[Optional[paddle.Tensor]]] = None,
                randomize_noise: bool = True) -> Tuple[paddle.Tensor, Optional[paddle.Tensor]]:
        """(image, the per-layer w if `return_latents`). `styles` are z (or w with
        `input_is_latent`); `noise` (one map per layer, or GPEN's features per resolution)
        replaces the random or fixed (`randomize_noise=False`) noise."""
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if truncation < 1 and truncation_latent is None:
            truncation_latent = self.mean_latent(10240)  # as PaddleGAN's get_mean_style: 10 x 1024
        styles = truncate(styles, truncation, truncation_latent)
        latent = latents_per_layer(styles, self.n_latent, inject_index)

        if noise is None:
            noise = ([None] * self.num_layers if randomize_noise else
                     [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)])

        out = self.conv1(self.input(latent.shape[0]), latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        for k in range(1, self.log_size - 1):
            # GPEN gives one feature map per resolution, used by both convs of that resolution.
            n1, n2 = (noise[k], noise[k]) if self.is_concat else (noise[2 * k - 1], noise[2 * k])
            out = self.convs[2 * k - 2](out, latent[:, 2 * k - 1], n1)
            out = self.convs[2 * k - 1](out, latent[:, 2 * k], n2)
            skip = self.to_rgbs[k - 1](out, latent[:, 2 * k + 1], skip)
        return skip, (latent if return_latents else None)
