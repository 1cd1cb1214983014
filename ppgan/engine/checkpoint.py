"""Checkpoint files: atomic writes, NumPy contents, and optimizer states that survive renaming.

Paddle keys an optimizer's state by internal parameter names (`conv2d_12.w_0_moment1_0`) that
depend on how many layers the process created before; a resumed run (or a test that builds
other nets first) gets different names and would silently start from empty Adam moments. The
checkpoint therefore stores each accumulator under the parameter's structured name
(`netG.face_encoder_blocks.0.0.conv_block.0.weight|moment1_0`) and maps it back on loading.
"""
import os
from typing import Any, Dict, Mapping

import numpy as np
import paddle
import paddle.nn as nn

from ..utils.atomic import atomic_path
from ..utils.errors import UserError

SEPARATOR = "|"


class ResumeError(UserError, ValueError):
    """A training checkpoint that does not match the model being resumed."""


def to_numpy_tree(value: Any) -> Any:
    """Tensors -> arrays inside dicts/lists, so files load without Paddle-specific objects."""
    if isinstance(value, paddle.Tensor):
        return value.numpy()
    if isinstance(value, Mapping):
        return {key: to_numpy_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy_tree(item) for item in value)
    return value


def save_atomic(obj: Any, path: str) -> None:
    """Write through a temporary file: an interruption never leaves a truncated checkpoint."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as partial:
        paddle.save(to_numpy_tree(obj), partial)


def load_file(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise ResumeError(f"checkpoint not found: {path}")
    state = paddle.load(path, return_numpy=True)
    if not isinstance(state, dict):
        raise ResumeError(f"{path} is not a checkpoint (holds a {type(state).__name__})")
    return state


def structured_names(nets: Mapping[str, nn.Layer]) -> Dict[str, str]:
    """{internal parameter name: 'net.structured.name'} over the given (unwrapped) nets."""
    names = {}
    for net_name, net in nets.items():
        for name, param in net.named_parameters():
            names[param.name] = f"{net_name}.{name}"
    return names


def _owner(key: str, internal_names: Mapping[str, str]) -> str:
    """The longest parameter name `p` with key == p + '_' + accumulator suffix ('' if none)."""
    best = ""
    for cut in range(len(key)):
        if key[cut] == "_" and key[:cut] in internal_names:
            best = key[:cut]
    return best


def portable_optimizer_state(optimizer: paddle.optimizer.Optimizer,
                             names: Mapping[str, str]) -> Dict[str, Any]:
    state = {}
    for key, value in optimizer.state_dict().items():
        if key == "master_weights":  # AMP O2: {param name: fp32 copy}
            state[key] = {names.get(k, k): v for k, v in value.items()}
            continue
        owner = _owner(key, names)
        if owner:
            state[f"{names[owner]}{SEPARATOR}{key[len(owner) + 1:]}"] = value
        else:
            state[key] = value  # e.g. LR_Scheduler
    return to_numpy_tree(state)


def restore_optimizer_state(optimizer: paddle.optimizer.Optimizer, state: Mapping[str, Any],
                            names: Mapping[str, str], label: str) -> None:
    """Load a `portable_optimizer_state` into `optimizer`; every accumulator must find its parameter."""
    internal = {structured: name for name, structured in names.items()}
    restored: Dict[str, Any] = {}
    for key, value in state.items():
        if key == "master_weights":
            restored[key] = {internal.get(k, k): paddle.to_tensor(v) for k, v in value.items()}
        elif SEPARATOR in key:
            structured, suffix = key.split(SEPARATOR, 1)
            if structured not in internal:
                raise ResumeError(f"{label}: the optimizer state is for parameter "
                                      f"{structured}, which this model does not have")
            restored[f"{internal[structured]}_{suffix}"] = paddle.to_tensor(np.asarray(value))
        else:
            restored[key] = value
    optimizer.set_state_dict(restored)
