"""Face restoration for the Wav2Lip pipeline, in PaddleGAN's layout: GPEN (`FaceEnhancement`,
PaddleGAN's default) and GFPGAN."""
from .base import Enhancer
from .face_enhance import FaceEnhancement
from .gfpgan_enhance import GFPGANEnhancement, gfp_FaceEnhancement

ENHANCERS = {"gpen": FaceEnhancement, "gfpgan": GFPGANEnhancement}

__all__ = ["ENHANCERS", "Enhancer", "FaceEnhancement", "GFPGANEnhancement", "gfp_FaceEnhancement"]
