from .builder import DATASETS, build_dataset
