"""GFPGANv1Clean: GFPGAN's "clean" architecture, the one of its released GFPGANv1.2
(`GFPGANCleanv1-NoCE-C2.pth`), v1.3 and v1.4 weights (GFPGAN's `gfpganv1_clean_arch.py`,
`stylegan2_clean_arch.py`).

The same U-Net, SFT and decoder wiring as GFPGANv1 (`SFTRestorer`, `SFTDecoder`), rebuilt from
plain layers so that it runs without StyleGAN2's custom ops; the weights are not interchangeable
with GFPGANv1's because the layers compute other functions:
- plain convs and linears: the weights are stored already scaled (no equalised learning rate,
  no lr_mul in the mapping network);
- plain leaky ReLUs (no sqrt(2) gain); the modulated conv's output is multiplied by sqrt(2)
  instead, before the noise and the bias;
- resampling is bilinear everywhere (decoder, RGB skips, U-Net), not the FIR filter with
  transposed or strided convs;
- the U-Net's ResBlocks add their skip without dividing by sqrt(2).
Parameter names are the original's, so its state dicts load after the linear weights are
transposed (tools/convert_weights.py).
"""
import math
from typing import Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...modules.stylegan2 import (ConstantInput, PixelNorm, demodulated, inject_noise,
                                  noise_resolutions, per_sample_conv2d,
                                  unfused_modulated_conv2d)
from .builder import GENERATORS
from .generator_styleganv2 import stylegan2_channels
from .gfpganv1_arch import SFTDecoder, SFTRestorer, bilinear_resized

NEGATIVE_SLOPE = 0.2


class CleanModulatedConv2D(nn.Layer):
    """StyleGAN2's modulated conv on a plain weight [1, out, in, k, k] and a plain linear
    `modulation` (bias 1); `upsample` resizes the input bilinearly x2 before the conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False, eps: float = 1e-8):
        super().__init__()
        fan_in = in_channels * kernel_size ** 2
        self.weight = self.create_parameter(
            [1, out_channels, in_channels, kernel_size, kernel_size],
            default_initializer=nn.initializer.Normal(std=1 / math.sqrt(fan_in)))
        self.modulation = nn.Linear(style_dim, in_channels,
                                    bias_attr=nn.initializer.Constant(1.0))
        self.demodulate = demodulate
        self.upsample = upsample
        self.eps = eps
        self.padding = kernel_size // 2
        self.fused = True  # False: the non-fused form (`unfuse_modulated_convs`)

    def forward(self, x: paddle.Tensor, style: paddle.Tensor) -> paddle.Tensor:
        if not self.fused:
            x = bilinear_resized(x, 2) if self.upsample else x
            return unfused_modulated_conv2d(x, self.modulation(style), self.weight[0],
                                            self.padding, self.demodulate, self.eps)
        s = self.modulation(style).reshape([x.shape[0], 1, x.shape[1], 1, 1])
        weight = self.weight * s
        if self.demodulate:
            weight = demodulated(weight, self.eps)
        if self.upsample:
            x = bilinear_resized(x, 2)
        return per_sample_conv2d(x, weight, self.padding)


class CleanStyleConv(nn.Layer):
    """Modulated conv x sqrt(2), plus noise scaled by `weight`, plus `bias`, leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 upsample: bool = False):
        super().__init__()
        self.modulated_conv = CleanModulatedConv2D(in_channels, out_channels, kernel_size,
                                                   style_dim, upsample=upsample)
        self.weight = self.create_parameter([1], default_initializer=nn.initializer.Constant(0.0))
        self.bias = self.create_parameter([1, out_channels, 1, 1],
                                          default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x: paddle.Tensor, style: paddle.Tensor,
                noise: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        out = inject_noise(self.modulated_conv(x, style) * 2 ** 0.5, self.weight, noise)
        return F.leaky_relu(out + self.bias, NEGATIVE_SLOPE)


class CleanToRGB(nn.Layer):
    """1x1 modulated conv to RGB (no demodulation) plus a bias, added to the bilinearly
    upsampled RGB of the resolution below."""

    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True):
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = CleanModulatedConv2D(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = self.create_parameter([1, 3, 1, 1],
                                          default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x: paddle.Tensor, style: paddle.Tensor,
                skip: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            out = out + (bilinear_resized(skip, 2) if self.upsample else skip)
        return out


def clean_mapping_network(style_dim: int, n_mlp: int) -> nn.Sequential:
    """z -> w: PixelNorm, then `n_mlp` plain linear layers each followed by a leaky ReLU (the
    linears are the odd indices 1, 3, ... of the state dict)."""
    layers = [PixelNorm()]
    for _ in range(n_mlp):
        layers += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(NEGATIVE_SLOPE)]
    return nn.Sequential(*layers)


class StyleGAN2GeneratorCSFT(SFTDecoder):
    """The clean StyleGAN2 decoder of GFPGANv1Clean, SFT-modulated."""

    def __init__(self, out_size: int, num_style_feat: int = 512, num_mlp: int = 8,
                 channel_multiplier: int = 2, narrow: float = 1, sft_half: bool = False):
        super().__init__()
        self.num_style_feat = num_style_feat
        self.sft_half = sft_half
        self.log_size = int(math.log(out_size, 2))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2
        channels = stylegan2_channels(channel_multiplier, narrow)

        self.style_mlp = clean_mapping_network(num_style_feat, num_mlp)
        self.constant_input = ConstantInput(channels[4], size=4, param_name="weight")
        self.style_conv1 = CleanStyleConv(channels[4], channels[4], 3, num_style_feat)
        self.to_rgb1 = CleanToRGB(channels[4], num_style_feat, upsample=False)
        self.style_convs = nn.LayerList()
        self.to_rgbs = nn.LayerList()
        in_ch = channels[4]
        for log_res in range(3, self.log_size + 1):
            out_ch = channels[2 ** log_res]
            self.style_convs.append(CleanStyleConv(in_ch, out_ch, 3, num_style_feat,
                                                   upsample=True))
            self.style_convs.append(CleanStyleConv(out_ch, out_ch, 3, num_style_feat))
            self.to_rgbs.append(CleanToRGB(out_ch, num_style_feat))
            in_ch = out_ch
        self.noises = nn.Layer()
        for i, res in enumerate(noise_resolutions(self.log_size)):
            self.noises.register_buffer(f"noise{i}", paddle.randn([1, 1, res, res]))


class CleanResBlock(nn.Layer):
    """3x3 conv, bilinear resize (x0.5 `down`, x2 up), 3x3 conv, leaky ReLUs after both, plus
    the resized input through a bias-free 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, down: bool):
        super().__init__()
        self.conv1 = nn.Conv2D(in_channels, in_channels, 3, padding=1)
        self.conv2 = nn.Conv2D(in_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2D(in_channels, out_channels, 1, bias_attr=False)
        self.factor = 0.5 if down else 2

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = bilinear_resized(F.leaky_relu(self.conv1(x), NEGATIVE_SLOPE), self.factor)
        out = F.leaky_relu(self.conv2(out), NEGATIVE_SLOPE)
        return out + self.skip(bilinear_resized(x, self.factor))


def _sft_branch(channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2D(channels, channels, 3, padding=1),
                         nn.LeakyReLU(NEGATIVE_SLOPE),
                         nn.Conv2D(channels, out_channels, 3, padding=1))


@GENERATORS.register()
class GFPGANv1Clean(SFTRestorer):
    """Restores a face (B, 3, out_size, out_size) in [-1, 1], RGB; returns (image, the
    intermediate RGB images from 8x8 up if `return_rgb`). GFPGAN's inference configuration:
    channel_multiplier 2, input_is_latent, different_w, sft_half (the defaults are the
    original class's)."""

    def __init__(self, out_size: int, num_style_feat: int = 512, channel_multiplier: int = 1,
                 fix_decoder: bool = True, num_mlp: int = 8, input_is_latent: bool = False,
                 different_w: bool = False, narrow: float = 1, sft_half: bool = False):
        super().__init__()
        self.input_is_latent = input_is_latent
        self.different_w = different_w
        self.num_style_feat = num_style_feat
        self.log_size = int(math.log(out_size, 2))
        channels = stylegan2_channels(channel_multiplier, narrow * 0.5)

        self.conv_body_first = nn.Conv2D(3, channels[2 ** self.log_size], 1)
        self.conv_body_down = nn.LayerList()
        in_ch = channels[2 ** self.log_size]
        for log_res in range(self.log_size - 1, 1, -1):
            self.conv_body_down.append(CleanResBlock(in_ch, channels[2 ** log_res], down=True))
            in_ch = channels[2 ** log_res]
        self.final_conv = nn.Conv2D(in_ch, channels[4], 3, padding=1)

        self.conv_body_up = nn.LayerList()
        in_ch = channels[4]
        for log_res in range(3, self.log_size + 1):
            self.conv_body_up.append(CleanResBlock(in_ch, channels[2 ** log_res], down=False))
            in_ch = channels[2 ** log_res]
        self.toRGB = nn.LayerList([nn.Conv2D(channels[2 ** log_res], 3, 1)
                                   for log_res in range(3, self.log_size + 1)])

        n_codes = self.log_size * 2 - 2 if different_w else 1
        self.final_linear = nn.Linear(channels[4] * 4 * 4, n_codes * num_style_feat)

        self.stylegan_decoder = StyleGAN2GeneratorCSFT(
            out_size=out_size, num_style_feat=num_style_feat, num_mlp=num_mlp,
            channel_multiplier=channel_multiplier, narrow=narrow, sft_half=sft_half)
        # The clean convs keep their default initialisation: no last bias to set.
        self._add_sft(channels, sft_half, fix_decoder, lambda ch, out, _: _sft_branch(ch, out))

    def first_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.leaky_relu(self.conv_body_first(x), NEGATIVE_SLOPE)

    def deepest_features(self, feat: paddle.Tensor) -> paddle.Tensor:
        return F.leaky_relu(self.final_conv(feat), NEGATIVE_SLOPE)
