"""GFPGAN v1: blind face restoration with a generative facial prior (Wang et al., CVPR 2021).

A U-Net degradation-removal module (encoder of ResBlocks, decoder of upsampling ResBlocks) gives
the latent codes of a pretrained StyleGAN2 decoder, one w per layer (`different_w`), and, at every
resolution, a spatial scale and shift (Spatial Feature Transform, sec. 3.3) that modulate the
decoder's features after its upsampling conv; with `sft_half` only half of the channels are
modulated, the other half keeps the prior's features as they are ("channel-split SFT"). The
U-Net is half as wide as the decoder (`narrow * 0.5`). `toRGB` gives the intermediate images of
the pyramid restoration loss.

PaddleGAN's `GFPGANv1`, same names and shapes (its StyleGAN2 decoder is BasicSR's, whose layer
names differ from PaddleGAN's StyleGANv2Generator: `style_mlp`, `constant_input`, `style_convs`,
`modulated_conv`, noise strength `weight`).
"""
import math
import re
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...modules.equalized import EqualConv2D, EqualLinear
from ...modules.fused_act import FusedLeakyReLU, ScaledLeakyReLU
from ...modules.stylegan2 import (ConstantInput, ConvLayer, ModulatedConv2D, ResBlock,
                                  inject_noise, latents_per_layer, mapping_network,
                                  noise_resolutions, truncate)
from ...modules.upfirdn2d import Upsample
from ...utils.download import resolve_weights
from .builder import GENERATORS
from .generator_styleganv2 import channel_multiplier_of, stylegan2_channels


# Bilinear x2 with half-pixel centres along one axis: each output sample is 3/4 of its nearer
# input and 1/4 of the next one out, the border sample repeated past the edge. Both axes at
# once: the outer product, as the (1, 1, 4, 4) kernel of a transposed convolution.
BILINEAR_X2 = (0.25, 0.75, 0.75, 0.25)
BILINEAR_X2_KERNEL = np.outer(BILINEAR_X2, BILINEAR_X2).astype("float32").reshape(1, 1, 4, 4)


def _doubled(x: paddle.Tensor) -> paddle.Tensor:
    # A stride-2 transposed convolution of the edge-padded channels, cropped by 3 where the
    # padding's own outputs fall.
    _, channels, height, width = x.shape
    padded = F.pad(x.reshape([-1, 1, height, width]), [1, 1, 1, 1], mode="replicate")
    doubled = F.conv2d_transpose(padded, paddle.to_tensor(BILINEAR_X2_KERNEL), stride=2, padding=3)
    return doubled.reshape([-1, channels, 2 * height, 2 * width])


def bilinear_resized(x: paddle.Tensor, factor: float) -> paddle.Tensor:
    """x [N, C, H, W] resized by 2 or 1/2 as F.interpolate(mode="bilinear",
    align_corners=False) does (1/2: the mean of each 2x2 block), written as a transposed
    convolution and pooling because oneDNN cannot run an exported interpolation in Paddle 3.3.1."""
    if factor == 2:
        return _doubled(x)
    if factor == 0.5:
        return F.avg_pool2d(x, 2)
    raise ValueError(f"bilinear_resized takes a factor of 2 or 0.5, got {factor}")


class StyleConv(nn.Layer):
    """Modulated conv, plus noise scaled by `weight`, then the biased leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int,
                 demodulate: bool = True, sample_mode: Optional[str] = None,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        if sample_mode not in (None, "upsample"):
            raise ValueError(f"sample_mode must be None or 'upsample', not {sample_mode!r}")
        self.modulated_conv = ModulatedConv2D(in_channels, out_channels, kernel_size,
                                              num_style_feat, demodulate=demodulate,
                                              upsample=sample_mode == "upsample",
                                              blur_kernel=resample_kernel)
        self.weight = self.create_parameter([1], default_initializer=nn.initializer.Constant(0.0))
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: paddle.Tensor, style: paddle.Tensor,
                noise: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        return self.activate(inject_noise(self.modulated_conv(x, style), self.weight, noise))


class ToRGB(nn.Layer):
    """1x1 modulated conv to RGB (no demodulation) plus a bias, added to the upsampled skip."""

    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.upsample = Upsample(resample_kernel) if upsample else None
        self.modulated_conv = ModulatedConv2D(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = self.create_parameter([1, 3, 1, 1],
                                          default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x: paddle.Tensor, style: paddle.Tensor,
                skip: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            out = out + (self.upsample(skip) if self.upsample is not None else skip)
        return out


class SFTDecoder(nn.Layer):
    """The synthesis loop of GFPGAN's StyleGAN2 decoders, whose features are modulated by the
    U-Net's SFT conditions after the upsampling conv of each resolution. Subclasses build the
    layers it runs: `style_mlp`, `constant_input`, `style_conv1`, `to_rgb1`, `style_convs`,
    `to_rgbs` and the fixed `noises` (noise0 ...), and set `num_layers`, `num_latent`,
    `log_size` and `sft_half`."""

    def forward(self, styles: List[paddle.Tensor], conditions: List[paddle.Tensor],
                input_is_latent: bool = False, noise: Optional[List[paddle.Tensor]] = None,
                randomize_noise: bool = True, truncation: float = 1.0,
                truncation_latent: Optional[paddle.Tensor] = None,
                inject_index: Optional[int] = None,
                return_latents: bool = False) -> Tuple[paddle.Tensor, Optional[paddle.Tensor]]:
        """`conditions` = [scale, shift] per resolution from 8x8 up (as many as given)."""
        if not input_is_latent:
            styles = [self.style_mlp(s) for s in styles]
        if noise is None:
            noise = ([None] * self.num_layers if randomize_noise else
                     [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)])
        latent = latents_per_layer(truncate(styles, truncation, truncation_latent),
                                   self.num_latent, inject_index)

        out = self.style_conv1(self.constant_input(latent.shape[0]), latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        for k in range(1, self.log_size - 1):
            out = self.style_convs[2 * k - 2](out, latent[:, 2 * k - 1], noise[2 * k - 1])
            if 2 * k - 1 < len(conditions):
                scale, shift = conditions[2 * k - 2], conditions[2 * k - 1]
                if self.sft_half:  # the second half of the channels is transformed
                    same, sft = paddle.split(out, 2, axis=1)
                    out = paddle.concat([same, sft * scale + shift], axis=1)
                else:
                    out = out * scale + shift
            out = self.style_convs[2 * k - 1](out, latent[:, 2 * k], noise[2 * k])
            skip = self.to_rgbs[k - 1](out, latent[:, 2 * k + 1], skip)
        return skip, (latent if return_latents else None)


class StyleGAN2GeneratorSFT(SFTDecoder):
    """The StyleGAN2 decoder of GFPGANv1 (BasicSR's StyleGAN2Generator), SFT-modulated."""

    def __init__(self, out_size: int, num_style_feat: int = 512, num_mlp: int = 8,
                 channel_multiplier: int = 2, resample_kernel: Sequence[float] = (1, 3, 3, 1),
                 lr_mlp: float = 0.01, narrow: float = 1, sft_half: bool = False):
        super().__init__()
        self.num_style_feat = num_style_feat
        self.sft_half = sft_half
        self.log_size = int(math.log(out_size, 2))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2
        channels = stylegan2_channels(channel_multiplier, narrow)

        self.style_mlp = mapping_network(num_style_feat, num_mlp, lr_mlp)
        self.constant_input = ConstantInput(channels[4], size=4, param_name="weight")
        self.style_conv1 = StyleConv(channels[4], channels[4], 3, num_style_feat,
                                     resample_kernel=resample_kernel)
        self.to_rgb1 = ToRGB(channels[4], num_style_feat, upsample=False,
                             resample_kernel=resample_kernel)
        self.style_convs = nn.LayerList()
        self.to_rgbs = nn.LayerList()
        in_ch = channels[4]
        for log_res in range(3, self.log_size + 1):
            out_ch = channels[2 ** log_res]
            self.style_convs.append(StyleConv(in_ch, out_ch, 3, num_style_feat,
                                              sample_mode="upsample",
                                              resample_kernel=resample_kernel))
            self.style_convs.append(StyleConv(out_ch, out_ch, 3, num_style_feat,
                                              resample_kernel=resample_kernel))
            self.to_rgbs.append(ToRGB(out_ch, num_style_feat, resample_kernel=resample_kernel))
            in_ch = out_ch
        # Fixed noise for `randomize_noise=False` (ones until weights are loaded), as PaddleGAN.
        self.noises = nn.Layer()
        for i, res in enumerate(noise_resolutions(self.log_size)):
            self.noises.register_buffer(f"noise{i}", paddle.ones([1, 1, res, res]))


class ConvUpLayer(EqualConv2D):
    """Bilinear x2 upsampling, then an equalised conv and its activation (the U-Net's decoder)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, bias_init: float = 0.0,
                 activate: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         bias=bias and not activate, bias_init=bias_init)
        if activate:
            self.activation = FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU(0.2)
        else:
            self.activation = None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = super().forward(bilinear_resized(x, 2))
        return out if self.activation is None else self.activation(out)


class ResUpBlock(nn.Layer):
    """ResBlock's mirror: 3x3 conv, then upsampling 3x3 conv, plus an upsampling 1x1 skip."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvUpLayer(in_channels, out_channels, 3, padding=1)
        self.skip = ConvUpLayer(in_channels, out_channels, 1, bias=False, activate=False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


def _sft_branch(channels: int, out_channels: int, last_bias: float) -> nn.Sequential:
    return nn.Sequential(
        EqualConv2D(channels, channels, 3, padding=1),
        ScaledLeakyReLU(0.2),
        EqualConv2D(channels, out_channels, 3, padding=1, bias_init=last_bias))


class SFTRestorer(nn.Layer):
    """GFPGAN's forward: the U-Net encodes the face to the decoder's codes and decodes it to the
    SFT conditions, the decoder restores the face from both. Subclasses build `conv_body_first`,
    `conv_body_down`, `final_conv`, `final_linear`, `conv_body_up`, `condition_scale`,
    `condition_shift`, `toRGB` and `stylegan_decoder`, and set `different_w`,
    `num_style_feat` and `input_is_latent`."""

    @staticmethod
    def config_from_weights(state: Mapping[str, Any]) -> dict:
        """The constructor's arguments that shape a GFPGAN with the state dict `state` (keys as
        here, linear weights [in, out]); raises KeyError without one of GFPGAN's keys."""
        d = "stylegan_decoder"
        log_size = len({key.split(".")[1] for key in state
                        if key.startswith("conv_body_down.")}) + 2
        narrow = np.shape(state[f"{d}.constant_input.weight"])[1] / 512
        style_dim = np.shape(state[f"{d}.to_rgb1.modulated_conv.modulation.weight"])[0]
        full_width = np.shape(state[f"{d}.to_rgbs.{log_size - 3}.modulated_conv.weight"])[2]
        sft_in, sft_out = np.shape(state["condition_scale.0.2.weight"])[1::-1]
        num_mlp = sum(re.fullmatch(rf"{d}\.style_mlp\.\d+\.weight", key) is not None
                      for key in state)
        return dict(out_size=2 ** log_size, num_style_feat=style_dim, num_mlp=num_mlp,
                    narrow=narrow, sft_half=sft_out == sft_in,
                    different_w=np.shape(state["final_linear.weight"])[1] != style_dim,
                    channel_multiplier=channel_multiplier_of(2 ** log_size, full_width, narrow, 1))

    def _add_sft(self, channels: Mapping[int, int], sft_half: bool, fix_decoder: bool,
                 branch: Callable[[int, int, float], nn.Layer]) -> None:
        """The SFT condition branches, a scale (last bias 1: identity at init) and a shift per
        resolution from 8 px up, made by `branch(in, out, last_bias)`; with `fix_decoder` the
        decoder (the prior) stays as pretrained."""
        if fix_decoder:
            for param in self.stylegan_decoder.parameters():
                param.stop_gradient = True
        self.condition_scale = nn.LayerList()
        self.condition_shift = nn.LayerList()
        for log_res in range(3, self.log_size + 1):
            ch = channels[2 ** log_res]
            sft_ch = ch if sft_half else ch * 2
            self.condition_scale.append(branch(ch, sft_ch, 1.0))
            self.condition_shift.append(branch(ch, sft_ch, 0.0))

    def first_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv_body_first(x)

    def deepest_features(self, feat: paddle.Tensor) -> paddle.Tensor:
        return self.final_conv(feat)

    def forward(self, x: paddle.Tensor, return_latents: bool = False, return_rgb: bool = True,
                randomize_noise: bool = False) -> Tuple[paddle.Tensor, List[paddle.Tensor]]:
        """`randomize_noise=False` (the default) uses the decoder's stored noise maps, so a
        restoration is deterministic."""
        feat = self.first_features(x)
        unet_skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            unet_skips.insert(0, feat)  # 4x4 first
        feat = self.deepest_features(feat)
        style_code = self.final_linear(feat.flatten(1))
        if self.different_w:
            style_code = style_code.reshape([0, -1, self.num_style_feat])  # [B, layers, D]

        conditions, out_rgbs = [], []
        for i, block in enumerate(self.conv_body_up):
            feat = block(feat + unet_skips[i])
            conditions.append(self.condition_scale[i](feat))
            conditions.append(self.condition_shift[i](feat))
            if return_rgb:
                out_rgbs.append(self.toRGB[i](feat))
        image, _ = self.stylegan_decoder([style_code], conditions, return_latents=return_latents,
                                         input_is_latent=self.input_is_latent,
                                         randomize_noise=randomize_noise)
        return image, out_rgbs


@GENERATORS.register()
class GFPGANv1(SFTRestorer):
    """Restores a face (B, 3, out_size, out_size) in [-1, 1], RGB; returns (image, the
    intermediate RGB images from 8x8 up if `return_rgb`)."""

    def __init__(self, out_size: int, num_style_feat: int = 512, channel_multiplier: int = 1,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1),
                 decoder_load_path: Optional[str] = None, fix_decoder: bool = True,
                 num_mlp: int = 8, lr_mlp: float = 0.01, input_is_latent: bool = False,
                 different_w: bool = False, narrow: float = 1, sft_half: bool = False):
        super().__init__()
        self.input_is_latent = input_is_latent
        self.different_w = different_w
        self.num_style_feat = num_style_feat
        self.log_size = int(math.log(out_size, 2))
        channels = stylegan2_channels(channel_multiplier, narrow * 0.5)

        # U-Net encoder: full size down to 4x4.
        self.conv_body_first = ConvLayer(3, channels[2 ** self.log_size], 1)
        self.conv_body_down = nn.LayerList()
        in_ch = channels[2 ** self.log_size]
        for log_res in range(self.log_size - 1, 1, -1):
            self.conv_body_down.append(ResBlock(in_ch, channels[2 ** log_res], resample_kernel))
            in_ch = channels[2 ** log_res]
        self.final_conv = ConvLayer(in_ch, channels[4], 3)

        # U-Net decoder: 8x8 up to full size, with an RGB output per resolution.
        self.conv_body_up = nn.LayerList()
        in_ch = channels[4]
        for log_res in range(3, self.log_size + 1):
            self.conv_body_up.append(ResUpBlock(in_ch, channels[2 ** log_res]))
            in_ch = channels[2 ** log_res]
        self.toRGB = nn.LayerList([EqualConv2D(channels[2 ** log_res], 3, 1)
                                   for log_res in range(3, self.log_size + 1)])

        n_codes = self.log_size * 2 - 2 if different_w else 1
        self.final_linear = EqualLinear(channels[4] * 4 * 4, n_codes * num_style_feat)

        self.stylegan_decoder = StyleGAN2GeneratorSFT(
            out_size=out_size, num_style_feat=num_style_feat, num_mlp=num_mlp,
            channel_multiplier=channel_multiplier, resample_kernel=resample_kernel,
            lr_mlp=lr_mlp, narrow=narrow, sft_half=sft_half)
        if decoder_load_path:
            # A pretrained StyleGAN2 (a path or URL), for training GFPGAN from scratch.
            path = resolve_weights(decoder_load_path, default_url=decoder_load_path)
            self.stylegan_decoder.set_state_dict(paddle.load(path))
        self._add_sft(channels, sft_half, fix_decoder, _sft_branch)
