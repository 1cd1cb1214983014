"""The METRICS registry: evaluation metrics buildable from a config's `validate.metrics` section."""
from typing import Any, Dict

from ..utils.registry import Registry, build_from_config

METRICS = Registry("METRIC")


def build_metric(cfg: Dict[str, Any]):
    return build_from_config(cfg, METRICS)
