from .wav2lip_predictor import Wav2LipPredictor
