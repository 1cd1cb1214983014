"""The DATASETS registry."""
from typing import Any, Dict

from ..utils.registry import Registry, build_from_config

DATASETS = Registry("DATASET")


def build_dataset(cfg: Dict[str, Any]):
    return build_from_config(cfg, DATASETS)
