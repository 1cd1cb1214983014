"""SyncNet of Chung & Zisserman as released in ``syncnet_python`` (``syncnet_v2.model``), in Paddle.

This is the network behind the LSE-D / LSE-C lip-sync scores, not Wav2Lip's own expert
(``SyncNetColor``). Layer lists, attribute names and Sequential indices follow the reference's
``S`` class so every parameter maps 1:1 from the PyTorch state dict (``netcnnaud.0.weight`` ...);
only the four Linear weights are transposed by the converter (Paddle stores them (in, out)).

Inputs are what ``syncnet_python`` feeds: lips ``(N, 3, 5, 224, 224)`` raw BGR pixel values in
0..255 (no normalisation), audio ``(N, 1, 13, 20)`` MFCC windows. Both towers output
``(N, 1024)`` embeddings, compared with a plain Euclidean distance.
"""
import logging
import os
from typing import Any, Mapping, Tuple

import paddle
from paddle import nn

from ..utils.convert import (ConversionError, extract_state_dict, to_paddle_state_dict,
                             transpose_linear_weights)
from ..utils.torch_checkpoint import CheckpointError, NotACheckpointError, load_torch_checkpoint
from ..utils.weights import OtherNetworkError, WeightsError, load_state_dict

logger = logging.getLogger(__name__)

__all__ = ["SyncNetV2", "SYNCNET_V2_URL", "load_syncnet_v2"]

# No Paddle release of these weights exists; `--syncnet_path` must name a local file.
SYNCNET_V2_URL = None
CONVERT_HINT = ("get syncnet_v2.model (syncnet_python's download_model.sh) and convert it: "
                "python tools/convert_weights.py syncnet_v2.model --net syncnet_v2")


def _conv_bn_relu_2d(cin: int, cout: int, kernel, padding) -> list:
    return [nn.Conv2D(cin, cout, kernel, stride=1, padding=padding), nn.BatchNorm2D(cout), nn.ReLU()]


def _conv_bn_relu_3d(cin: int, cout: int, kernel, stride=1, padding=0) -> list:
    return [nn.Conv3D(cin, cout, kernel, stride=stride, padding=padding), nn.BatchNorm3D(cout),
            nn.ReLU()]


def _audio_tower() -> nn.Sequential:
    # 13x20 MFCC -> 1x1x512. The (1,1) pool is a no-op kept so the indices match the reference.
    return nn.Sequential(
        *_conv_bn_relu_2d(1, 64, 3, 1), nn.MaxPool2D(kernel_size=1, stride=1),           # 0-3
        *_conv_bn_relu_2d(64, 192, 3, 1), nn.MaxPool2D(kernel_size=3, stride=(1, 2)),    # 4-7
        *_conv_bn_relu_2d(192, 384, 3, 1),                                                # 8-10
        *_conv_bn_relu_2d(384, 256, 3, 1),                                                # 11-13
        *_conv_bn_relu_2d(256, 256, 3, 1), nn.MaxPool2D(kernel_size=3, stride=2),        # 14-17
        *_conv_bn_relu_2d(256, 512, (5, 4), 0),                                           # 18-20
    )


def _lip_tower() -> nn.Sequential:
    # 5x224x224 -> 1x1x1x512; only the first conv looks across time (all 5 frames at once).
    return nn.Sequential(
        *_conv_bn_relu_3d(3, 96, (5, 7, 7), stride=(1, 2, 2)),                            # 0-2
        nn.MaxPool3D(kernel_size=(1, 3, 3), stride=(1, 2, 2)),                            # 3
        *_conv_bn_relu_3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),       # 4-6
        nn.MaxPool3D(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),         # 7
        *_conv_bn_relu_3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),                        # 8-10
        *_conv_bn_relu_3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),                        # 11-13
        *_conv_bn_relu_3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),                        # 14-16
        nn.MaxPool3D(kernel_size=(1, 3, 3), stride=(1, 2, 2)),                            # 17
        *_conv_bn_relu_3d(256, 512, (1, 6, 6)),                                           # 18-20
    )


def _fc_head(embedding_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1D(512), nn.ReLU(),
                         nn.Linear(512, embedding_size))


class SyncNetV2(nn.Layer):
    """syncnet_python's ``S``: ``forward_lip`` and ``forward_aud`` give the two embeddings."""

    def __init__(self, num_layers_in_fc_layers: int = 1024):
        super().__init__()
        self.netcnnaud = _audio_tower()
        self.netfcaud = _fc_head(num_layers_in_fc_layers)
        self.netfclip = _fc_head(num_layers_in_fc_layers)
        self.netcnnlip = _lip_tower()

    def forward_aud(self, x: paddle.Tensor) -> paddle.Tensor:
        mid = self.netcnnaud(x)
        return self.netfcaud(mid.reshape([mid.shape[0], -1]))

    def forward_lip(self, x: paddle.Tensor) -> paddle.Tensor:
        mid = self.netcnnlip(x)
        return self.netfclip(mid.reshape([mid.shape[0], -1]))

    def forward(self, lips: paddle.Tensor, audio: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        return self.forward_lip(lips), self.forward_aud(audio)


def _read_weights(path: str) -> Mapping[str, Any]:
    """A Paddle ``.pdparams``, or the original PyTorch file converted in memory (no torch)."""
    try:
        checkpoint = load_torch_checkpoint(path)
    except NotACheckpointError:
        checkpoint = None  # not PyTorch: try Paddle below
    except CheckpointError as err:
        raise WeightsError(str(err)) from None
    if checkpoint is not None:
        logger.info("%s is a PyTorch file: converting it in memory", path)
        try:
            params, _ = to_paddle_state_dict(extract_state_dict(checkpoint, path), path)
        except ConversionError as err:
            raise WeightsError(f"{err}; {CONVERT_HINT}") from None
        return transpose_linear_weights(params, "syncnet_v2")
    try:
        return paddle.load(path)
    except Exception as err:  # paddle raises many types for a foreign file
        raise WeightsError(f"{path} is not a Paddle weights file ({type(err).__name__}); "
                           f"{CONVERT_HINT}") from None


def _load(net: SyncNetV2, state: Mapping[str, Any], path: str) -> None:
    try:
        load_state_dict(net, state, path)
    except OtherNetworkError as err:  # Wav2Lip's own expert is the usual mix-up
        raise WeightsError(f"{path} does not hold syncnet_python SyncNet weights but {err.found} "
                           f"weights (Wav2Lip's lipsync_expert is a different net); "
                           f"{CONVERT_HINT}") from None
    except WeightsError as err:
        raise WeightsError(f"{err}; {CONVERT_HINT}") from None


def load_syncnet_v2(path: "str | os.PathLike[str] | None") -> SyncNetV2:
    """The evaluation SyncNet in eval mode with the weights of ``path``; WeightsError otherwise."""
    if not path:
        raise WeightsError("no SyncNet weights given (there is no Paddle release to download); "
                           + CONVERT_HINT)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"SyncNet weights not found: {path}")
    net = SyncNetV2()
    _load(net, _read_weights(path), path)
    net.eval()
    return net
