from .builder import DATASETS, build_dataloader, build_dataset
from .wav2lip_dataset import Wav2LipDataset
