"""The DISCRIMINATORS registry."""
from typing import Any, Dict

from ...utils.registry import Registry, build_from_config

DISCRIMINATORS = Registry("DISCRIMINATOR")


def build_discriminator(cfg: Dict[str, Any]):
    return build_from_config(cfg, DISCRIMINATORS)
