from .wav2lip_predictor import Wav2LipPredictor
from .wav2lip_stream import Wav2LipStream
