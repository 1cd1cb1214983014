"""PaddleGAN's GFPGAN face enhancer (its `gfp_FaceEnhancement`), with `FaceEnhancement`'s
interface."""
import paddle.nn as nn

from ...models.generators.gfpganv1_arch import GFPGANv1
from .base import Enhancer

GFPGAN_URL = "https://paddlegan.bj.bcebos.com/models/GFPGAN.pdparams"  # the net under net_g_ema


class GFPGANEnhancement(Enhancer):
    """GFPGANv1 in the configuration of PaddleGAN's released weights; see `Enhancer`."""

    NETWORK = "GFPGANv1"
    URL = GFPGAN_URL

    @staticmethod
    def build(size: int) -> nn.Layer:
        return GFPGANv1(out_size=size, num_style_feat=512, channel_multiplier=1,
                        resample_kernel=[1, 3, 3, 1], fix_decoder=True, num_mlp=8, lr_mlp=0.01,
                        input_is_latent=True, different_w=True, narrow=1, sft_half=True)


def gfp_FaceEnhancement(size: int = 512, batch_size: int = 1) -> GFPGANEnhancement:  # noqa: N802
    """PaddleGAN's name and arguments for the GFPGAN enhancer (it always downloads the weights)."""
    return GFPGANEnhancement(None, size, batch_size)
