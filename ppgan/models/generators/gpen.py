"""GPEN: GAN Prior Embedded Network for blind face restoration (Yang et al., CVPR 2021).

A pretrained StyleGAN2 generator is embedded as the decoder of a U-shaped network: a
convolutional encoder maps the degraded face to the latent code (through `final_linear` and the
generator's mapping network), and its feature map at every resolution takes the place of the
generator's noise inputs, concatenated to the layers' features (sec. 3.2), which carries the
input's local structure into the decoder. PaddleGAN's `GPEN`, same names and shapes.
"""
import math
import re
from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from ...modules.equalized import EqualLinear
from ...modules.stylegan2 import ConvLayer
from .builder import GENERATORS
from .generator_styleganv2 import StyleGANv2Generator, channel_multiplier_of, stylegan2_channels


@GENERATORS.register()
class GPEN(nn.Layer):
    """Restores a face (B, 3, size, size) in [-1, 1], RGB; returns (image, latents or None).

    `narrow` scales every layer's channels, as in the original GPEN (its GPEN-BFR-256: 0.5;
    PaddleGAN's class has no such argument, i.e. 1)."""

    def __init__(self, size: int, style_dim: int, n_mlp: int, channel_multiplier: int = 2,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), lr_mlp: float = 0.01,
                 is_concat: bool = True, narrow: float = 1.0):
        super().__init__()
        channels = stylegan2_channels(channel_multiplier, narrow)
        self.log_size = int(math.log(size, 2))
        self.generator = StyleGANv2Generator(size, style_dim, n_mlp,
                                             channel_multiplier=channel_multiplier,
                                             blur_kernel=blur_kernel, lr_mlp=lr_mlp,
                                             is_concat=is_concat, narrow=narrow)
        # Encoder ecd0 (1x1 conv at full size) .. ecd{log_size-2} (4x4), each a one-layer
        # Sequential as in PaddleGAN (hence the keys ecdN.0.*).
        self.names = [f"ecd{i}" for i in range(self.log_size - 1)]
        self.ecd0 = nn.Sequential(ConvLayer(3, channels[size], 1))
        in_ch = channels[size]
        for i, log_res in enumerate(range(self.log_size - 1, 1, -1), start=1):
            out_ch = channels[2 ** log_res]
            setattr(self, f"ecd{i}", nn.Sequential(ConvLayer(in_ch, out_ch, 3, downsample=True)))
            in_ch = out_ch
        self.final_linear = nn.Sequential(
            EqualLinear(channels[4] * 4 * 4, style_dim, activation="fused_lrelu"))

    @staticmethod
    def config_from_weights(state: Mapping[str, Any]) -> dict:
        """The constructor's arguments that shape a GPEN with the state dict `state` (keys as
        here); raises KeyError without one of GPEN's keys."""
        depth = len({key.split(".")[0] for key in state if re.match(r"ecd\d+\.", key)})
        size = 2 ** (depth + 1)  # ecd0 at full size .. ecd{depth-1} at 4x4
        narrow = np.shape(state["generator.input.input"])[1] / 512
        full_width = np.shape(state["ecd0.0.0.weight"])[0]
        n_mlp = sum(re.fullmatch(r"generator\.style\.\d+\.weight", key) is not None
                    for key in state)
        return dict(size=size, style_dim=np.shape(state["final_linear.0.weight"])[1],
                    n_mlp=n_mlp, narrow=narrow,
                    channel_multiplier=channel_multiplier_of(size, full_width, narrow, 2))

    def forward(self, inputs: paddle.Tensor, return_latents: bool = False,
                inject_index: Optional[int] = None, truncation: float = 1.0,
                truncation_latent: Optional[paddle.Tensor] = None,
                input_is_latent: bool = False) -> Tuple[paddle.Tensor, Optional[paddle.Tensor]]:
        features = []
        x = inputs
        for name in self.names:
            x = getattr(self, name)(x)
            features.append(x)
        code = self.final_linear(x.flatten(1))
        # The decoder runs from 4x4 up: the features in reverse order, one per resolution.
        return self.generator([code], return_latents=return_latents, inject_index=inject_index,
                              truncation=truncation, truncation_latent=truncation_latent,
                              input_is_latent=input_is_latent, noise=features[::-1])
