"""Loading weights into a network from a flat `.pdparams` or a trainer checkpoint, with clear errors.

A flat file maps parameter names to arrays (PaddleGAN's released weights). A trainer checkpoint
maps net names (`netG`, `netD`, ...) to such dicts, possibly beside optimizer states; the nested
dict that holds the requested network is found by its keys, so either kind loads anywhere.
"""
import os
import pickle
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import paddle

from .errors import UserError

StateDict = Dict[str, Any]


class WeightsError(UserError, ValueError):
    """A weights file that does not fit the network; the message names the file and the problem."""


class OtherNetworkError(WeightsError):
    """Weights of another network (`found`, a class name), for callers that explain the mix-up."""

    def __init__(self, message: str, found: str):
        super().__init__(message)
        self.found = found


def identify_network(state_dict: Mapping[str, Any]) -> Optional[str]:
    """Which network a flat state dict belongs to, from its parameter names (None if unknown)."""
    keys = set(state_dict)

    def has_prefix(prefix: str) -> bool:
        return any(key.startswith(prefix) for key in keys)

    if has_prefix("face_decoder_blocks.") and has_prefix("audio_encoder."):
        return "Wav2Lip"
    if has_prefix("face_encoder.") and has_prefix("audio_encoder."):
        return "SyncNetColor"
    if has_prefix("face_encoder_blocks.") and has_prefix("binary_pred."):
        return "Wav2LipDiscQual"
    if "conv1_1.weight" in keys and "fc7.weight" in keys:
        return "S3FD"
    if has_prefix("netcnnaud.") and has_prefix("netcnnlip."):
        return "SyncNetV2"
    if "backbone1.0.weight" in keys and has_prefix("classifier_8."):
        return "BlazeFace"
    if "generator.input.input" in keys and has_prefix("ecd0."):
        return "GPEN"
    if has_prefix("stylegan_decoder.") and "conv_body_first.weight" in keys:  # a plain conv
        return "GFPGANv1Clean"
    if has_prefix("stylegan_decoder.") and has_prefix("conv_body_first."):
        return "GFPGANv1"
    return None


def _read_file(path: str) -> Any:
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    try:
        return paddle.load(path)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, OSError, RuntimeError) as err:
        raise WeightsError(
            f"{path} is not a Paddle weights file ({type(err).__name__}); a PyTorch .pth checkpoint "
            "must first be converted with tools/convert_weights.py") from None


def _nested_state_dicts(checkpoint: Mapping[str, Any]) -> Dict[str, StateDict]:
    return {name: value for name, value in checkpoint.items()
            if isinstance(value, Mapping) and identify_network(value) is not None}


def select_state_dict(checkpoint: Any, network: str, source: str = "weights") -> StateDict:
    """The flat state dict for `network` (a class name) inside a flat file or a trainer checkpoint."""
    if not isinstance(checkpoint, Mapping):
        raise WeightsError(f"{source} holds a {type(checkpoint).__name__}, not a state dict")
    if "state_dict" in checkpoint and "global_step" in checkpoint:
        raise WeightsError(f"{source} is an original PyTorch Wav2Lip checkpoint; convert it with "
                           "tools/convert_weights.py")
    if identify_network(checkpoint) is not None:
        return dict(checkpoint)  # a flat file: load_state_dict names another network's weights
    nested = _nested_state_dicts(checkpoint)
    # A GAN's checkpoint may hold its generator twice: the averaged one (PaddleGAN's GFPGAN
    # weights: net_g_ema) is the one to restore with.
    for name, state_dict in sorted(nested.items(), key=lambda item: item[0] != "net_g_ema"):
        if identify_network(state_dict) == network:
            return dict(state_dict)
    if nested:
        held = ", ".join(f"{name} ({identify_network(sd)})" for name, sd in nested.items())
        raise WeightsError(f"{source} is a checkpoint of {held}, with no {network} weights")
    raise WeightsError(f"{source} holds no weights recognisable as {network}")


def _as_array(value: Any) -> np.ndarray:
    return value.numpy() if isinstance(value, paddle.Tensor) else np.asarray(value)


def describe_mismatches(state_dict: Mapping[str, Any], expected: Mapping[str, Sequence[int]]) -> List[str]:
    """What keeps `state_dict` from fitting a net whose parameter shapes are `expected`:
    e.g. ["1 missing (a.bias)", "2 mis-shaped (b.weight [3, 1] vs [3, 2], ...)"]; [] if it fits."""
    shapes = {key: list(_as_array(value).shape) for key, value in state_dict.items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    misshaped = [f"{key} {shapes[key]} vs {list(expected[key])}" for key in expected
                 if key in shapes and shapes[key] != list(expected[key])]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if items:
            shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
            problems.append(f"{len(items)} {label} ({shown})")
    return problems


def _fitted(value: Any, like: paddle.Tensor) -> Any:
    """`value` in `like`'s dtype: Paddle refuses e.g. float64 values for float32 weights."""
    array = _as_array(value)
    if str(like.dtype) == f"paddle.{array.dtype}":
        return array
    return paddle.to_tensor(array).astype(like.dtype)


def check_network(state_dict: Mapping[str, Any], networks: Sequence[str], source: str) -> None:
    """Raises OtherNetworkError when `state_dict`'s keys are recognisably another network's than
    `networks` (class names, the first the one named in the message)."""
    found = identify_network(state_dict)
    if found is not None and found not in networks:
        raise OtherNetworkError(f"{source} holds {found} weights, not {networks[0]} weights", found)


def load_state_dict(net: paddle.nn.Layer, state_dict: Mapping[str, Any], source: str) -> None:
    """Loads the flat `state_dict` into `net` only if it fits exactly, else raises WeightsError.

    The message names `source` and either the network the weights belong to when they are another
    one's (OtherNetworkError) or the missing, unexpected and mis-shaped keys: a partial load would
    run silently with random layers.
    """
    network = type(net).__name__
    check_network(state_dict, [cls.__name__ for cls in type(net).__mro__], source)
    expected = net.state_dict()
    problems = describe_mismatches(state_dict, {key: value.shape for key, value in expected.items()})
    if problems:
        raise WeightsError(f"{source} does not fit {network}: " + "; ".join(problems))
    net.set_state_dict({key: _fitted(value, expected[key]) for key, value in state_dict.items()})


def read_state_dict(path: str, network: str) -> StateDict:
    """The flat state dict for `network` (a class name) in the file at `path`, not yet loaded:
    for callers that size the network from its weights before building it."""
    return select_state_dict(_read_file(path), network, path)


def load_weights(net: paddle.nn.Layer, source: Union[str, Mapping[str, Any]]) -> None:
    """Load `source` (a path, or an already loaded dict) into `net` with `load_state_dict`: a flat
    file, or the state dict of a trainer checkpoint that holds `net`'s network."""
    label = source if isinstance(source, str) else "the given state dict"
    checkpoint = _read_file(source) if isinstance(source, str) else source
    load_state_dict(net, select_state_dict(checkpoint, type(net).__name__, label), label)
