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

from .torch_checkpoint import load_torch_checkpoint

logger = logging.getLogger(__name__)

__all__ = [
    "NETWORKS",
    "ConversionError",
    "ConversionResult",
    "convert_checkpoint",
    "default_output_path",
    "detect_network",
    "expected_shapes",
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

Shape = Tuple[int, ...]


class ConversionError(ValueError):
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


def detect_network(names: Iterable[str]) -> Optional[str]:
    """Guesses the network from its (Paddle-style) parameter names; None when unrecognisable."""
    names = list(names)

    def has_prefix(prefix: str) -> bool:
        return any(n.startswith(prefix) for n in names)

    if "conv1_1.weight" in names and "fc7.weight" in names:
        return "s3fd"
    if has_prefix("netcnnaud.") and has_prefix("netcnnlip."):
        return "syncnet_v2"
    if has_prefix("face_decoder_blocks.") and has_prefix("audio_encoder."):
        return "wav2lip"
    if has_prefix("face_encoder.") and has_prefix("audio_encoder."):
        return "syncnet"
    if has_prefix("face_encoder_blocks.") and has_prefix("binary_pred."):
        return "disc"
    return None


def _s3fd_shapes() -> Dict[str, Shape]:
    # (name, in, out, kernel) of every conv in the face_alignment S3FD net, which RW and PG share.
    convs = [
        ("conv1_1", 3, 64, 3), ("conv1_2", 64, 64, 3),
        ("conv2_1", 64, 128, 3), ("conv2_2", 128, 128, 3),
        ("conv3_1", 128, 256, 3), ("conv3_2", 256, 256, 3), ("conv3_3", 256, 256, 3),
        ("conv4_1", 256, 512, 3), ("conv4_2", 512, 512, 3), ("conv4_3", 512, 512, 3),
        ("conv5_1", 512, 512, 3), ("conv5_2", 512, 512, 3), ("conv5_3", 512, 512, 3),
        ("fc6", 512, 1024, 3), ("fc7", 1024, 1024, 1),
        ("conv6_1", 1024, 256, 1), ("conv6_2", 256, 512, 3),
        ("conv7_1", 512, 128, 1), ("conv7_2", 128, 256, 3),
    ]
    # Detection heads: the conv3_3 confidence head has 4 outputs (max-out background), others 2.
    for source, channels in [("conv3_3_norm", 256), ("conv4_3_norm", 512), ("conv5_3_norm", 512),
                             ("fc7", 1024), ("conv6_2", 512), ("conv7_2", 256)]:
        convs.append((f"{source}_mbox_conf", channels, 4 if source == "conv3_3_norm" else 2, 3))
        convs.append((f"{source}_mbox_loc", channels, 4, 3))
    shapes: Dict[str, Shape] = {}
    for name, cin, cout, k in convs:
        shapes[f"{name}.weight"] = (cout, cin, k, k)
        shapes[f"{name}.bias"] = (cout,)
    for name, channels in [("conv3_3_norm", 256), ("conv4_3_norm", 512), ("conv5_3_norm", 512)]:
        shapes[f"{name}.weight"] = (channels,)  # L2Norm scale
    return shapes


def _check_network_name(network: str) -> None:
    if network not in NETWORKS:
        raise ConversionError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}")


def _build_paddle_net(network: str) -> Any:
    # Imported here so that reading and checking a checkpoint never pays for importing Paddle.
    from ..metrics.syncnet_eval import SyncNetV2
    from ..models import SyncNetColor, Wav2Lip, Wav2LipDiscQual
    return {"wav2lip": Wav2Lip, "syncnet": SyncNetColor, "disc": Wav2LipDiscQual,
            "syncnet_v2": SyncNetV2}[network]()


def expected_shapes(network: str) -> Dict[str, Shape]:
    """Parameter names and shapes of our Paddle implementation of ``network``."""
    _check_network_name(network)
    if network == "s3fd":  # the Paddle S3FD net is not written yet: use the known layout
        return _s3fd_shapes()
    return _shapes_of(_build_paddle_net(network))


def _shapes_of(net: Any) -> Dict[str, Shape]:
    return {name: tuple(p.shape) for name, p in net.state_dict().items()}


def _examples(names: "set[str]") -> str:
    shown = sorted(names)[:3]
    return ", ".join(shown) + (", ..." if len(names) > len(shown) else "")


def _compare(params: Mapping[str, np.ndarray], expected: Mapping[str, Shape]) -> List[str]:
    """Human-readable differences between converted weights and a net's parameters."""
    missing = set(expected) - set(params)
    unexpected = set(params) - set(expected)
    misshaped = {n for n in set(expected) & set(params) if tuple(params[n].shape) != expected[n]}
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_examples(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_examples(unexpected)})")
    if misshaped:
        name = sorted(misshaped)[0]
        problems.append(f"{len(misshaped)} with the wrong shape (e.g. {name}: "
                        f"{tuple(params[name].shape)} vs {expected[name]})")
    return problems


def verify_state_dict(params: Mapping[str, np.ndarray], network: str, source: str = "checkpoint",
                      detected: Optional[str] = None) -> None:
    """Raises ConversionError unless ``params`` fits the Paddle ``network`` exactly.

    Names and shapes are compared with a freshly built Paddle net, into which the weights are then
    loaded as the final proof. S3FD has no Paddle net yet, so its known layout is used instead.
    """
    _check_network_name(network)
    net = None if network == "s3fd" else _build_paddle_net(network)
    problems = _compare(params, _s3fd_shapes() if net is None else _shapes_of(net))
    if problems:
        hint = ""
        if detected and detected != network:
            hint = f"; its keys look like a {detected} checkpoint"
        raise ConversionError(
            f"{source}: does not match the Paddle {network} net: {'; '.join(problems)}{hint}")
    if net is not None:
        missing, unexpected = net.set_state_dict(dict(params))
        if missing or unexpected:
            raise ConversionError(f"{source}: Paddle {network} reported {len(missing)} missing "
                                  f"and {len(unexpected)} unexpected keys")


def _save_atomically(params: Mapping[str, np.ndarray], output: str) -> None:
    import paddle  # see _build_paddle_net for why this import is local

    # Write next to the target and rename, so the target is either complete or untouched.
    temporary = f"{output}.{os.getpid()}.tmp"
    try:
        paddle.save(dict(params), temporary)
        os.replace(temporary, output)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


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

    verify_state_dict(params, network, source, detected)
    _save_atomically(params, output)
    num_values = int(sum(p.size for p in params.values()))
    logger.info("wrote %s", output)
    return ConversionResult(network, output, len(params), num_values, dropped)
