from .builder import GENERATORS, build_generator
from .wav2lip import Wav2Lip
from .gpen import GPEN
from .gfpganv1_arch import GFPGANv1
from .gfpganv1_clean_arch import GFPGANv1Clean
