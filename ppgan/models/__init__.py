from .builder import MODELS, build_model
from .discriminators import DISCRIMINATORS, SyncNetColor, Wav2LipDiscQual, build_discriminator
from .generators import GENERATORS, Wav2Lip, build_generator
