from .builder import MODELS, build_model
from .discriminators import DISCRIMINATORS, SyncNetColor, Wav2LipDiscQual, build_discriminator
from .generators import GENERATORS, Wav2Lip, build_generator
from .base_model import BaseModel
from .syncnet_model import SyncNetModel
from .wav2lip_model import Wav2LipModel
from .wav2lip_hq_model import Wav2LipModelHq
