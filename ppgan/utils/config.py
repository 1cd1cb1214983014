"""YAML experiment configs as attribute dicts, with `-o a.b.c=value` command-line overrides.

PaddleGAN's `get_config` `eval`s override values and `literal_eval`s every string in the file; here
both go through one YAML safe loader, so `-o model.syncnet_wt=0.01` gives a float, `-o a=[1, 2]`
a list, `-o a=null` None, and anything else (say `__import__('os')`) stays a plain string.
The numeric (and boolean) values are then checked against `checks.CONFIG_RULES`, from the file
and the overrides alike, before anything is built from them.
"""
import copy
import re
from typing import Any, Iterable, Iterator, List, Optional, Tuple

import yaml

from .checks import CONFIG_RULES, CheckError, check_l1_weight
from .errors import UserError


class ConfigError(UserError, ValueError):
    """A config file or an override that cannot be used; the message says which and why."""


class AttrDict(dict):
    """A dict whose keys can also be read and written as attributes (`cfg.model.name`)."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __deepcopy__(self, memo: dict) -> "AttrDict":
        return AttrDict({key: copy.deepcopy(value, memo) for key, value in self.items()})


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-4` as a string (it wants `1.0e-4`); learning rates are written that way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def to_attr_dict(value: Any) -> Any:
    """Dicts (at any depth, also inside lists) become AttrDicts."""
    if isinstance(value, dict):
        return AttrDict({key: to_attr_dict(item) for key, item in value.items()})
    if isinstance(value, list):
        return [to_attr_dict(item) for item in value]
    return value


def to_plain(value: Any) -> Any:
    """The reverse of `to_attr_dict`, for dumping and pickling."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    return value


def parse_value(text: str) -> Any:
    """A command-line value as YAML would read it; never evaluated as code."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text  # e.g. "a: b: c": not YAML, so the user meant the literal text


def parse_config(path: str) -> AttrDict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, not {type(data).__name__}")
    return to_attr_dict(data)


def _child(node: Any, part: str, walked: str) -> Any:
    """One step of a dotted path: a dict key that exists, or an in-range list index."""
    if isinstance(node, dict):
        if part not in node:
            known = ", ".join(sorted(map(str, node))) or "none"
            raise ConfigError(f"unknown config key '{walked}' (keys here: {known})")
        return part
    if isinstance(node, list):
        if not re.fullmatch(r"-?\d+", part) or not -len(node) <= int(part) < len(node):
            raise ConfigError(f"'{walked}': {part!r} is not an index of a {len(node)}-item list")
        return int(part)
    raise ConfigError(f"'{walked}': cannot index into a {type(node).__name__} value")


def override_config(cfg: AttrDict, options: Optional[Iterable[str]]) -> AttrDict:
    """Apply `key.sub.0.leaf=value` options in place; each key must already exist in `cfg`."""
    for option in options or ():
        path, sep, text = option.partition("=")
        if not sep or not path:
            raise ConfigError(f"override {option!r} must look like key.sub=value")
        parts: List[str] = path.split(".")
        node: Any = cfg
        for depth, part in enumerate(parts):
            key = _child(node, part, ".".join(parts[:depth + 1]))
            if depth == len(parts) - 1:
                node[key] = to_attr_dict(parse_value(text))
            else:
                node = node[key]
    return cfg


def _matches(node: Any, parts: List[str], prefix: str = "") -> Iterator[Tuple[str, dict, str]]:
    """(dotted path, parent dict, key) of each key matching `parts` ("*": any key)."""
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    for key in (list(node) if head == "*" else [head] if head in node else []):
        path = f"{prefix}{key}"
        if rest:
            yield from _matches(node[key], rest, path + ".")
        else:
            yield path, node, key


def check_config(cfg: AttrDict) -> AttrDict:
    """Check (and convert, e.g. '8' -> 8) in place every value that CONFIG_RULES has a rule for;
    the ConfigError names the key: `dataset.train.batch_size: must be an integer >= 1 (got 0)`."""
    for pattern, check in CONFIG_RULES.items():
        for path, parent, key in _matches(cfg, pattern.split(".")):
            try:
                parent[key] = check(parent[key])
            except CheckError as err:
                raise ConfigError(str(err.named(path))) from None
    model = cfg.get("model")
    try:
        check_l1_weight(model if isinstance(model, dict) else {})
    except CheckError as err:
        raise ConfigError(str(err)) from None
    return cfg


def get_config(path: str, overrides: Optional[Iterable[str]] = None) -> AttrDict:
    """The config at `path` with the `-o` overrides applied, checked."""
    return check_config(override_config(parse_config(path), overrides))


def dump_config(cfg: AttrDict) -> str:
    return yaml.safe_dump(to_plain(cfg), sort_keys=False, default_flow_style=False)
