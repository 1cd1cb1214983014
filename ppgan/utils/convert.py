"""The steps of converting original PyTorch Wav2Lip / SyncNet / quality-disc / S3FD weights to Paddle.

Also for ``syncnet_v2.model``, the weights of syncnet_python's SyncNet that computes the LSE-D /
LSE-C scores (network ``syncnet_v2``; a bare state dict, like S3FD's file).

Recipe (see the reference notes, section 4): take ``ckpt["state_dict"]`` when present (S3FD's file
is a bare state dict), strip the ``module.`` prefix DataParallel added, drop BatchNorm's
``num_batches_tracked``, rename ``running_mean``/``running_var`` to Paddle's ``_mean``/``_variance``
and store float32 numpy arrays. Conv2d / Conv3d / ConvTranspose2d weights share Paddle's layout;
only Linear weights, stored (out, in) by PyTorch and (in, out) by Paddle, are transposed, and of
these networks only ``syncnet_v2`` has Linear layers.

No network is built here (utils imports nothing above it): ``ppgan/convert_weights.py`` checks
the result against the Paddle network and writes the file.
"""
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import numpy as np

from .errors import UserError

__all__ = [
    "NETWORKS",
    "NETWORK_CLASSES",
    "ConversionError",
    "detect_network",
    "extract_state_dict",
    "to_paddle_state_dict",
    "transpose_linear_weights",
]

# Our names for the networks (the CLI's --net choices) -> their Paddle class names.
NETWORK_CLASSES = {"wav2lip": "Wav2Lip", "syncnet": "SyncNetColor", "disc": "Wav2LipDiscQual",
                   "s3fd": "S3FD", "syncnet_v2": "SyncNetV2"}
NETWORKS = tuple(NETWORK_CLASSES)

# The Linear weights of each network (PyTorch (out, in) -> Paddle (in, out)).
_LINEAR_WEIGHTS = {
    "syncnet_v2": ("netfcaud.0.weight", "netfcaud.3.weight",
                   "netfclip.0.weight", "netfclip.3.weight"),
}


class ConversionError(UserError, ValueError):
    """The checkpoint was readable but is not convertible to the requested network."""


def extract_state_dict(checkpoint: Any, source: str = "checkpoint") -> Mapping[str, Any]:
    """The flat ``name -> array`` mapping of a Wav2Lip training checkpoint or a bare state dict."""
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        return checkpoint["state_dict"]
    if isinstance(checkpoint, Mapping) and checkpoint and all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in checkpoint.items()):
        return checkpoint
    raise ConversionError(
        f"{source}: holds neither a 'state_dict' entry nor a plain dict of tensors")


def _paddle_name(name: str) -> str:
    if name.startswith("module."):
        name = name[len("module."):]
    if name.endswith(".running_mean"):
        return name[:-len("running_mean")] + "_mean"
    if name.endswith(".running_var"):
        return name[:-len("running_var")] + "_variance"
    return name


def to_paddle_state_dict(state: Mapping[str, Any], source: str = "checkpoint"
                         ) -> Tuple[Dict[str, np.ndarray], int]:
    """Applies the renaming recipe; returns the float32 Paddle dict and the number dropped."""
    params: Dict[str, np.ndarray] = {}
    dropped = 0
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):  # Paddle's BatchNorm has no such buffer
            dropped += 1
            continue
        if not isinstance(value, np.ndarray):
            raise ConversionError(
                f"{source}: entry {name!r} is a {type(value).__name__}, not a tensor")
        new_name = _paddle_name(name)
        if new_name in params:
            raise ConversionError(f"{source}: two entries map to the Paddle name {new_name!r}")
        params[new_name] = np.ascontiguousarray(value, dtype=np.float32)
    return params, dropped


def transpose_linear_weights(params: Mapping[str, np.ndarray], network: str
                             ) -> Dict[str, np.ndarray]:
    """``params`` with the Linear weights of ``network`` transposed to Paddle's (in, out)."""
    linear = _LINEAR_WEIGHTS.get(network, ())
    return {name: np.ascontiguousarray(value.T) if name in linear and value.ndim == 2 else value
            for name, value in params.items()}


def detect_network(names: Iterable[str]) -> Optional[str]:
    """Guesses the network from its (Paddle-style) parameter names; None when unrecognisable."""
    from .weights import identify_network  # weights imports Paddle, which reading need not wait for

    found = identify_network(dict.fromkeys(names))
    return next((net for net, cls in NETWORK_CLASSES.items() if cls == found), None)
