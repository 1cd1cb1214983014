"""Converting original PyTorch weights to a verified ``.pdparams``: the part that knows the networks.

The steps that need no network (reading the PyTorch file, renaming, transposing) are in
``ppgan/utils/convert.py``; here the result is loaded into a freshly built Paddle network before
anything is written, and written atomically, so a failed conversion never leaves a half-written
``.pdparams`` behind. tools/convert_weights.py is the command line.
"""
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Optional

import numpy as np

from .utils.atomic import atomic_path
from .utils.convert import (NETWORK_CLASSES, NETWORKS, ConversionError, detect_network,
                            extract_state_dict, to_paddle_state_dict, transpose_linear_weights)
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


def _build_network(network: str) -> "paddle.nn.Layer":
    _check_network_name(network)
    # Imported here so that the cheap checks of a conversion never wait for importing Paddle.
    from .faceutils.face_detection.detection.sfd.net_s3fd import S3FD
    from .metrics.syncnet_eval import SyncNetV2
    from .models import SyncNetColor, Wav2Lip, Wav2LipDiscQual

    classes = {cls.__name__: cls
               for cls in (Wav2Lip, SyncNetColor, Wav2LipDiscQual, S3FD, SyncNetV2)}
    return classes[NETWORK_CLASSES[network]]()


def verify_state_dict(params: Mapping[str, np.ndarray], network: str,
                      source: str = "checkpoint") -> None:
    """Raises ConversionError unless ``params`` loads into a fresh Paddle ``network`` exactly."""
    from .utils.weights import OtherNetworkError, WeightsError, load_state_dict  # see _build_network

    try:
        load_state_dict(_build_network(network), params, source)
    except OtherNetworkError as err:
        held = detect_network(params) or err.found
        raise ConversionError(f"{source}: its keys look like a {held} checkpoint, not {network}; "
                              "leave out --net to convert it as what it is") from None
    except WeightsError as err:
        raise ConversionError(str(err)) from None


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

    verify_state_dict(params, network, source)
    _save_atomically(params, output)
    num_values = int(sum(p.size for p in params.values()))
    logger.info("wrote %s", output)
    return ConversionResult(network, output, len(params), num_values, dropped)
