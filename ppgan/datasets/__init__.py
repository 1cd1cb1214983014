from .builder import DATASETS, build_dataloader, build_dataset
