"""The DATASETS registry and the data loader builder (PaddleGAN's `build_dataloader`)."""
import copy
from typing import Any, Dict

from paddle.io import DataLoader, DistributedBatchSampler

from ..utils.registry import Registry, build_from_config

DATASETS = Registry("DATASET")


def build_dataset(cfg: Dict[str, Any]):
    return build_from_config(cfg, DATASETS)


def build_dataloader(cfg: Dict[str, Any], is_train: bool = True) -> DataLoader:
    """A loader from a `dataset.train` / `dataset.test` config section.

    `batch_size`, `num_workers` and `use_shared_memory` are loader settings; the rest builds the
    dataset. The batch size is per process: under `paddle.distributed.launch` each rank reads
    its own shard (DistributedBatchSampler also serves the single-process case).
    """
    cfg = copy.deepcopy(dict(cfg))
    batch_size = cfg.pop("batch_size", 1)
    num_workers = cfg.pop("num_workers", 0)
    use_shared_memory = cfg.pop("use_shared_memory", False)
    dataset = build_dataset(cfg)
    sampler = DistributedBatchSampler(dataset, batch_size=batch_size, shuffle=is_train,
                                      drop_last=is_train)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                      use_shared_memory=use_shared_memory)
