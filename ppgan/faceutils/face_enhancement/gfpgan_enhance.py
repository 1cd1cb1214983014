"""PaddleGAN's GFPGAN face enhancer (its `gfp_FaceEnhancement`), with `FaceEnhancement`'s
interface, and GFPGAN's later clean architecture (its released v1.2, v1.3 and v1.4 weights)."""
import paddle.nn as nn

from ...models.generators.gfpganv1_arch import GFPGANv1
from ...models.generators.gfpganv1_clean_arch import GFPGANv1Clean
from .base import Enhancer

GFPGAN_URL = "https://paddlegan.bj.bcebos.com/models/GFPGAN.pdparams"  # the net under net_g_ema

# The shape of GFPGAN's released weights (both architectures, but for the channel multiplier),
# for a network built without weights; the weights' own shape overrides it.
RELEASED_SHAPE = dict(num_style_feat=512, num_mlp=8, narrow=1.0, different_w=True,
                      sft_half=True)


class GFPGANEnhancement(Enhancer):
    """GFPGANv1 in the configuration of PaddleGAN's released weights (GFPGAN's GFPGANv1.pth is
    the same network); see `Enhancer`."""

    NETWORK = "GFPGANv1"
    URL = GFPGAN_URL
    SIZE_ARG = "out_size"

    @staticmethod
    def build(size: int, **shape) -> nn.Layer:
        shape = {**RELEASED_SHAPE, "channel_multiplier": 1, **shape}
        return GFPGANv1(out_size=size, resample_kernel=[1, 3, 3, 1], fix_decoder=True,
                        lr_mlp=0.01, input_is_latent=True, **shape)


class GFPGANCleanEnhancement(Enhancer):
    """GFPGANv1Clean, the network of GFPGAN's GFPGANCleanv1-NoCE-C2.pth (v1.2), GFPGANv1.3.pth
    and GFPGANv1.4.pth; no default weights (PaddleGAN has none): pass the converted file. See
    `Enhancer`."""

    NETWORK = "GFPGANv1Clean"
    SIZE_ARG = "out_size"

    @staticmethod
    def build(size: int, **shape) -> nn.Layer:
        shape = {**RELEASED_SHAPE, "channel_multiplier": 2, **shape}
        return GFPGANv1Clean(out_size=size, fix_decoder=True, input_is_latent=True, **shape)


def gfp_FaceEnhancement(size: int = 512, batch_size: int = 1) -> GFPGANEnhancement:  # noqa: N802
    """PaddleGAN's name and arguments for the GFPGAN enhancer (it always downloads the weights)."""
    return GFPGANEnhancement(None, size, batch_size)
