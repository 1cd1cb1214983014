"""The MODELS registry: training models (a generator plus its critics, losses and optimizers)."""
from typing import Any, Dict

from ..utils.registry import Registry, build_from_config

MODELS = Registry("MODEL")


def build_model(cfg: Dict[str, Any]):
    return build_from_config(cfg, MODELS)
