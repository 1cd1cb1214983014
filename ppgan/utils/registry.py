"""Name -> class registries that let YAML configs build objects by their `name` key."""
import copy
from typing import Any, Callable, Dict, Optional


class Registry:
    """A mapping from class names to classes, filled by the `register` decorator."""

    def __init__(self, name: str):
        self._name = name
        self._classes: Dict[str, type] = {}

    @property
    def name(self) -> str:
        return self._name

    def register(self, cls: Optional[type] = None, name: Optional[str] = None) -> Callable:
        """Register `cls` under `name` (default: its class name). Usable as `@X.register()`."""

        def _add(c: type) -> type:
            key = name or c.__name__
            if key in self._classes:
                raise KeyError(f"{key} is already registered in {self._name}")
            self._classes[key] = c
            return c

        return _add(cls) if cls is not None else _add

    def get(self, name: str) -> type:
        if name not in self._classes:
            known = ", ".join(sorted(self._classes)) or "none"
            raise KeyError(f"no {self._name} named '{name}' (known: {known})")
        return self._classes[name]

    def __contains__(self, name: str) -> bool:
        return name in self._classes

    def __len__(self) -> int:
        return len(self._classes)


def build_from_config(cfg: Dict[str, Any], registry: Registry, default_args: Optional[Dict[str, Any]] = None) -> Any:
    """Build `registry[cfg['name']](**rest_of_cfg, **default_args)` without changing `cfg`."""
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ValueError(f"a {registry.name} config must be a dict with a 'name' key, got {cfg!r}")
    kwargs = copy.deepcopy(dict(cfg))
    cls = registry.get(kwargs.pop("name"))
    for key, value in (default_args or {}).items():
        kwargs.setdefault(key, value)
    return cls(**kwargs)
