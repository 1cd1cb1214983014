"""The steps of converting original PyTorch weights to Paddle: Wav2Lip / SyncNet / quality-disc /
S3FD, syncnet_python's SyncNet (``syncnet_v2.model``, behind the LSE-D / LSE-C scores), and the
face restorers GPEN (``GPEN-BFR-512.pth``), GFPGANv1 (``GFPGANv1.pth``) and GFPGANv1Clean
(``GFPGANCleanv1-NoCE-C2.pth``, ``GFPGANv1.3.pth``, ``GFPGANv1.4.pth``).

Recipe (see the reference notes, section 4): take the network's state dict from the checkpoint
(Wav2Lip's ``state_dict``; GFPGAN's averaged ``params_ema`` before ``params``; a GPEN training
checkpoint's ``g_ema``; S3FD's, GPEN's and SyncNet's files are bare state dicts), strip the
``module.`` prefix DataParallel added, drop BatchNorm's ``num_batches_tracked``, rename
``running_mean``/``running_var`` to Paddle's ``_mean``/``_variance`` and store float32 numpy
arrays. Conv weights (2-D, 3-D, transposed, and StyleGAN2's modulated [1, out, in, k, k]) share
Paddle's layout; only Linear weights, stored (out, in) by PyTorch and (in, out) by Paddle, are
transposed: syncnet_v2's, and the face restorers' mapping networks, style modulations and final
linears.

No network is built here (utils imports nothing above it): ``ppgan/convert_weights.py`` checks
the result against the Paddle network, reconciles the buffers the two sides keep differently and
writes the file.
"""
import re
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import numpy as np

from .errors import UserError

__all__ = [
    "NETWORKS",
    "NETWORK_CLASSES",
    "ZERO_FILLED_BUFFERS",
    "ConversionError",
    "detect_network",
    "extract_state_dict",
    "to_paddle_state_dict",
    "transpose_linear_weights",
]

# Our names for the networks (the CLI's --net choices) -> their Paddle class names.
NETWORK_CLASSES = {"wav2lip": "Wav2Lip", "syncnet": "SyncNetColor", "disc": "Wav2LipDiscQual",
                   "s3fd": "S3FD", "syncnet_v2": "SyncNetV2", "gpen": "GPEN",
                   "gfpgan": "GFPGANv1", "gfpgan_clean": "GFPGANv1Clean"}
NETWORKS = tuple(NETWORK_CLASSES)

# The entries holding the network in a checkpoint, in order of preference (GFPGAN's and GPEN's
# averaged generator before the trained one).
_STATE_DICT_ENTRIES = ("state_dict", "params_ema", "g_ema", "params")

# The Linear weights of each network (PyTorch (out, in) -> Paddle (in, out)).
_GFPGAN_LINEARS = re.compile(r"(stylegan_decoder\.style_mlp\.\d+|final_linear|.+\.modulation)"
                             r"\.weight")
_LINEAR_WEIGHTS = {
    "syncnet_v2": re.compile(r"netfc(aud|lip)\.[03]\.weight"),
    "gpen": re.compile(r"(generator\.style\.\d+|final_linear\.0|.+\.modulation)\.weight"),
    "gfpgan": _GFPGAN_LINEARS,
    "gfpgan_clean": _GFPGAN_LINEARS,
}

# PaddleGAN's GPEN keeps StyleGAN2's fixed noise maps (generator.noises.noise_i), which GPEN never
# uses (its encoder's features take their place) and GPEN's own files lack: they are written as
# zeros.
ZERO_FILLED_BUFFERS = {"gpen": re.compile(r"generator\.noises\.noise_\d+")}


class ConversionError(UserError, ValueError):
    """The checkpoint was readable but is not convertible to the requested network."""


def extract_state_dict(checkpoint: Any, source: str = "checkpoint") -> Mapping[str, Any]:
    """The flat ``name -> array`` mapping of a training checkpoint (the first of
    _STATE_DICT_ENTRIES it has) or a bare state dict."""
    if isinstance(checkpoint, Mapping):
        for entry in _STATE_DICT_ENTRIES:
            if isinstance(checkpoint.get(entry), Mapping):
                return checkpoint[entry]
    if isinstance(checkpoint, Mapping) and checkpoint and all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in checkpoint.items()):
        return checkpoint
    raise ConversionError(
        f"{source}: holds no {'/'.join(repr(e) for e in _STATE_DICT_ENTRIES)} entry and is no "
        "plain dict of tensors")


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
    linear = _LINEAR_WEIGHTS.get(network)

    def is_linear(name: str, value: np.ndarray) -> bool:
        return linear is not None and value.ndim == 2 and linear.fullmatch(name) is not None

    return {name: np.ascontiguousarray(value.T) if is_linear(name, value) else value
            for name, value in params.items()}


def detect_network(names: Iterable[str]) -> Optional[str]:
    """Guesses the network from its (Paddle-style) parameter names; None when unrecognisable."""
    from .weights import identify_network  # weights imports Paddle, which reading need not wait for

    found = identify_network(dict.fromkeys(names))
    return next((net for net, cls in NETWORK_CLASSES.items() if cls == found), None)
