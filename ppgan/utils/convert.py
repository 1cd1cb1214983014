"""Convert the original PyTorch Wav2Lip / SyncNet / quality-disc / S3FD weights to ``.pdparams``.

Also converts ``syncnet_v2.model``, the weights of syncnet_python's SyncNet that computes the
LSE-D / LSE-C scores (network ``syncnet_v2``; a bare state dict, like S3FD's file).

Recipe (see the reference notes, section 4): take ``ckpt["state_dict"]`` when present (S3FD's file
is a bare state dict), strip the ``module.`` prefix DataParallel added, drop BatchNorm's
``num_batches_tracked``, rename ``running_mean``/``running_var`` to Paddle's ``_mean``/``_variance``
and store float32 numpy arrays with ``paddle.save``. Conv2d / Conv3d / ConvTranspose2d weights share
Paddle's layout; only Linear weights, stored (out, in) by PyTorch and (in, out) by Paddle, are
transposed, and of these networks only ``syncnet_v2`` has Linear layers.

The result is checked against the matching Paddle network before anything is written, and written
atomically, so a failed conversion never leaves a half-written ``.pdparams`` behind.
"""
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from .atomic import atomic_path
from .torch_checkpoint import load_torch_checkpoint
from .errors import UserError

logger = logging.getLogger(__name__)

__all__ = [
    "NETWORKS",
    "ConversionError",
    "ConversionResult",
    "convert_checkpoint",
    "default_output_path",
    "detect_network",
    "extract_state_dict",
    "to_paddle_state_dict",
    "transpose_linear_weights",
    "verify_state_dict",
]

NETWORKS = ("wav2lip", "syncnet", "disc", "s3fd", "syncnet_v2")

# The Linear weights of each network (PyTorch (out, in) -> Paddle (in, out)).
_LINEAR_WEIGHTS = {
    "syncnet_v2": ("netfcaud.0.weight", "netfcaud.3.weight",
                   "netfclip.0.weight", "netfclip.3.weight"),
}

class ConversionError(UserError, ValueError):
    """The checkpoint was readable but is not convertible to the requested network."""


@dataclass(frozen=True)
class ConversionResult:
    network: str
    output: str
    num_tensors: int
    num_values: int  # scalars stored, BN statistics included
    dropped: int  # num_batches_tracked buffers left out


def default_output_path(source: str) -> str:
    """``weights/wav2lip.pth`` -> ``weights/wav2lip.pdparams``."""
    return os.path.splitext(source)[0] + ".pdparams"


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


# Our names for the networks (the CLI's --net choices) -> their Paddle class names.
NETWORK_CLASSES = {"wav2lip": "Wav2Lip", "syncnet": "SyncNetColor", "disc": "Wav2LipDiscQual",
                   "s3fd": "S3FD", "syncnet_v2": "SyncNetV2"}


def detect_network(names: Iterable[str]) -> Optional[str]:
    """Guesses the network from its (Paddle-style) parameter names; None when unrecognisable."""
    from .weights import identify_network

    found = identify_network(dict.fromkeys(names))
    return next((net for net, cls in NETWORK_CLASSES.items() if cls == found), None)


def _check_network_name(network: str) -> None:
    if network not in NETWORKS:
        raise ConversionError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}")


def _build_paddle_net(network: str) -> Any:
    # Imported here so that reading and checking a checkpoint never pays for importing Paddle.
    from ..faceutils.face_detection.detection.sfd.net_s3fd import S3FD
    from ..metrics.syncnet_eval import SyncNetV2
    from ..models import SyncNetColor, Wav2Lip, Wav2LipDiscQual
    return {"wav2lip": Wav2Lip, "syncnet": SyncNetColor, "disc": Wav2LipDiscQual, "s3fd": S3FD,
            "syncnet_v2": SyncNetV2}[network]()


def verify_state_dict(params: Mapping[str, np.ndarray], network: str,
                      source: str = "checkpoint") -> None:
    """Raises ConversionError unless ``params`` loads into a fresh Paddle ``network`` exactly."""
    _check_network_name(network)
    from .weights import OtherNetworkError, WeightsError, load_state_dict

    try:
        load_state_dict(_build_paddle_net(network), params, source)
    except OtherNetworkError as err:
        held = detect_network(params) or err.found
        raise ConversionError(f"{source}: its keys look like a {held} checkpoint, not {network}; "
                              "leave out --net to convert it as what it is") from None
    except WeightsError as err:
        raise ConversionError(str(err)) from None


def _save_atomically(params: Mapping[str, np.ndarray], output: str) -> None:
    import paddle  # see _build_paddle_net for why this import is local

    with atomic_path(output) as partial:  # the target is either complete or untouched
        paddle.save(dict(params), partial)


def convert_checkpoint(source: "str | os.PathLike[str]",
                       output: "str | os.PathLike[str] | None" = None,
                       network: Optional[str] = None) -> ConversionResult:
    """Converts a PyTorch checkpoint to a verified PaddleGAN ``.pdparams`` file.

    ``network`` (one of NETWORKS) forces the target net; by default it is detected from the keys.
    Raises FileNotFoundError, CheckpointError or ConversionError (both ValueErrors) for bad input.
    """
    source = os.fspath(source)
    output = os.fspath(output) if output is not None else default_output_path(source)
    if network is not None:
        _check_network_name(network)
    # Check the cheap things before spending seconds on loading.
    if os.path.abspath(output) == os.path.abspath(source):
        raise ConversionError(
            f"{source}: output would overwrite the input; pass another output path")
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        raise ConversionError(f"{output}: output folder {out_dir} does not exist")

    checkpoint = load_torch_checkpoint(source)
    params, dropped = to_paddle_state_dict(extract_state_dict(checkpoint, source), source)
    detected = detect_network(params)
    if network is None:
        if detected is None:
            raise ConversionError(
                f"{source}: cannot tell which network these weights belong to; pass --net "
                f"({'/'.join(NETWORKS)})")
        network = detected
    logger.info("%s: %d tensors for %s (detected: %s), %d num_batches_tracked dropped",
                source, len(params), network, detected, dropped)
    params = transpose_linear_weights(params, network)

    verify_state_dict(params, network, source)
    _save_atomically(params, output)
    num_values = int(sum(p.size for p in params.values()))
    logger.info("wrote %s", output)
    return ConversionResult(network, output, len(params), num_values, dropped)
