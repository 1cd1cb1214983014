"""Converting original PyTorch weights to a verified ``.pdparams``: the part that knows the networks.

The steps that need no network (reading the PyTorch file, renaming, transposing) are in
``ppgan/utils/convert.py``; here the result is loaded into a freshly built Paddle network before
anything is written, and written atomically, so a failed conversion never leaves a half-written
``.pdparams`` behind. tools/convert_weights.py is the command line.
"""
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Mapping, Optional

import numpy as np

from .utils.atomic import atomic_path
from .utils.convert import (NETWORK_CLASSES, NETWORKS, ZERO_FILLED_BUFFERS, ConversionError,
                            detect_network, extract_state_dict, to_paddle_state_dict,
                            transpose_linear_weights)
from .utils.torch_checkpoint import load_torch_checkpoint

if TYPE_CHECKING:
    import paddle

logger = logging.getLogger(__name__)

__all__ = ["ConversionResult", "convert_checkpoint", "default_output_path", "verify_state_dict"]


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


def _check_network_name(network: str) -> None:
    if network not in NETWORKS:
        raise ConversionError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}")


def _build_network(network: str, params: Mapping[str, np.ndarray],
                   source: str) -> "paddle.nn.Layer":
    """A fresh Paddle `network`, shaped (size, widths) as the weights `params` are when its
    constructor has such arguments."""
    _check_network_name(network)
    # Imported here so that the cheap checks of a conversion never wait for importing Paddle.
    from .faceutils.face_detection.detection.sfd.net_s3fd import S3FD
    from .metrics.syncnet_eval import SyncNetV2
    from .models import SyncNetColor, Wav2Lip, Wav2LipDiscQual
    from .models.generators import GFPGANv1, GFPGANv1Clean, GPEN

    classes = {cls.__name__: cls for cls in (Wav2Lip, SyncNetColor, Wav2LipDiscQual, S3FD,
                                             SyncNetV2, GPEN, GFPGANv1, GFPGANv1Clean)}
    cls = classes[NETWORK_CLASSES[network]]
    if not hasattr(cls, "config_from_weights"):
        return cls()
    try:
        return cls(**cls.config_from_weights(params))
    except KeyError as err:
        raise ConversionError(f"{source}: has no {err.args[0]}, so it holds no {network} "
                              "weights") from None


def _reconcile_buffers(params: Mapping[str, np.ndarray], net: "paddle.nn.Layer", network: str,
                       source: str) -> Dict[str, np.ndarray]:
    """`params` with the buffers the two frameworks' networks keep differently made Paddle's:
    constants the Paddle network computes itself (GPEN's blur kernels) are checked against its
    own and left out; the unused buffers of ZERO_FILLED_BUFFERS it lacks are added as zeros."""
    params = dict(params)
    saved = net.state_dict()
    constants = [(name, buffer) for name, buffer in net.named_buffers()
                 if name in params and name not in saved]
    for name, buffer in constants:
        if not np.allclose(params.pop(name), buffer.numpy(), rtol=0, atol=1e-7):
            raise ConversionError(f"{source}: {name} is not the [1, 3, 3, 1] FIR kernel "
                                  f"{NETWORK_CLASSES[network]} has; another architecture")
    zero_filled = ZERO_FILLED_BUFFERS.get(network)
    filled = [name for name in saved if name not in params and zero_filled is not None
              and zero_filled.fullmatch(name)]
    for name in filled:
        params[name] = np.zeros(saved[name].shape, np.float32)
    if constants or filled:
        logger.info("%s: %d constant kernels checked and left out, %d unused buffers written as "
                    "zeros", source, len(constants), len(filled))
    return params


def verify_state_dict(params: Mapping[str, np.ndarray], network: str,
                      source: str = "checkpoint") -> Dict[str, np.ndarray]:
    """`params` as they load into a fresh Paddle ``network`` exactly (see _reconcile_buffers);
    raises ConversionError when they do not."""
    # Local for the reason _build_network's imports are.
    from .utils.weights import OtherNetworkError, WeightsError, check_network, load_state_dict

    try:
        check_network(params, [NETWORK_CLASSES[network]], source)
        net = _build_network(network, params, source)
        params = _reconcile_buffers(params, net, network, source)
        load_state_dict(net, params, source)
    except OtherNetworkError as err:
        held = detect_network(params) or err.found
        raise ConversionError(f"{source}: its keys look like a {held} checkpoint, not {network}; "
                              "leave out --net to convert it as what it is") from None
    except WeightsError as err:
        raise ConversionError(str(err)) from None
    return params


def _save_atomically(params: Mapping[str, np.ndarray], output: str) -> None:
    import paddle  # see _build_network for why this import is local

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

    params = verify_state_dict(params, network, source)
    _save_atomically(params, output)
    num_values = int(sum(p.size for p in params.values()))
    logger.info("wrote %s", output)
    return ConversionResult(network, output, len(params), num_values, dropped)
