"""PaddleGAN's `FaceEnhancement`: GPEN-512 face restoration with its interface and results."""
import paddle.nn as nn

from ...models.generators.gpen import GPEN
from .base import Enhancer

GPEN_URL = "https://paddlegan.bj.bcebos.com/models/GPEN-512.pdparams"


class FaceEnhancement(Enhancer):
    """GPEN (PaddleGAN's wav2lip enhancer, style_dim 512, 8 mapping layers; GPEN's own
    GPEN-BFR-512 is the same network, GPEN-BFR-256 a narrower one); see `Enhancer`."""

    NETWORK = "GPEN"
    URL = GPEN_URL

    @staticmethod
    def build(size: int, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
              narrow: float = 1.0) -> nn.Layer:
        return GPEN(size=size, style_dim=style_dim, n_mlp=n_mlp,
                    channel_multiplier=channel_multiplier, narrow=narrow)
