"""The GENERATORS registry."""
from typing import Any, Dict

from ...utils.registry import Registry, build_from_config

GENERATORS = Registry("GENERATOR")


def build_generator(cfg: Dict[str, Any]):
    return build_from_config(cfg, GENERATORS)
