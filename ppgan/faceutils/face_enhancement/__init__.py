"""Face restoration for the Wav2Lip pipeline, in PaddleGAN's layout: GPEN (`FaceEnhancement`,
PaddleGAN's default), GFPGAN (PaddleGAN's GFPGANv1) and GFPGAN's clean architecture (v1.2-v1.4)."""
from .base import Enhancer
from .face_enhance import FaceEnhancement
from .gfpgan_enhance import GFPGANCleanEnhancement, GFPGANEnhancement, gfp_FaceEnhancement

ENHANCERS = {"gpen": FaceEnhancement, "gfpgan": GFPGANEnhancement,
             "gfpgan_clean": GFPGANCleanEnhancement}

__all__ = ["ENHANCERS", "Enhancer", "FaceEnhancement", "GFPGANCleanEnhancement",
           "GFPGANEnhancement", "gfp_FaceEnhancement"]
