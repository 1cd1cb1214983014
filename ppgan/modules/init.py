"""Weight initialisation schemes: the one each reference starts its networks from.

- "normal":  PaddleGAN's Wav2LipModel. Its `init_weights(netG, distribution='uniform')` keeps the
             default init_type 'normal', so conv/linear weights ~ N(0, gain), BatchNorm weights
             ~ N(1, gain), biases 0.
- "kaiming": PaddleGAN's Wav2LipModelHq (netG and netDH). Weights ~ U(-b, b) with
             b = sqrt(6 / fan_in) (kaiming uniform, a=0, fan_in), BatchNorm weights ~ N(1, gain),
             biases 0.
- "pytorch": the original Wav2Lip, which keeps PyTorch's layer defaults: weights and biases
             ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming uniform with a=sqrt(5)), BatchNorm
             weight 1 and bias 0.
- "paddle":  Paddle's own layer defaults, left as built.

fan_in is that of PyTorch's layout: in_features for a linear layer, weight.shape[1] x kernel size
for a conv, which for a transposed conv (Paddle weight [C_in, C_out, kh, kw]) is C_out x kh x kw.
Every draw comes from Paddle's global generator, so `paddle.seed` fixes the weights.
"""
import logging
import math
from typing import Optional

import numpy as np
import paddle
import paddle.nn as nn

logger = logging.getLogger(__name__)

INIT_TYPES = ("normal", "kaiming", "pytorch", "paddle")

# The layers each scheme sets: PaddleGAN's Conv*/Linear (by class name there) and BatchNorm*.
WEIGHTED_LAYERS = (nn.Conv1D, nn.Conv2D, nn.Conv3D, nn.Conv1DTranspose, nn.Conv2DTranspose,
                   nn.Conv3DTranspose, nn.Linear)
BATCH_NORMS = (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.SyncBatchNorm)


def fan_in(layer: nn.Layer) -> int:
    """Inputs feeding one output unit, as PyTorch counts them (Paddle's Linear weight is [in, out])."""
    shape = layer.weight.shape
    if isinstance(layer, nn.Linear):
        return int(shape[0])
    return int(shape[1] * np.prod(shape[2:]))


def _fill_normal(param: Optional[paddle.Tensor], mean: float, std: float) -> None:
    if param is not None:
        param.set_value(paddle.normal(mean, std, param.shape).astype(param.dtype))


def _fill_uniform(param: Optional[paddle.Tensor], bound: float) -> None:
    if param is not None:
        param.set_value(paddle.uniform(param.shape, dtype=param.dtype, min=-bound, max=bound))


def _fill_constant(param: Optional[paddle.Tensor], value: float) -> None:
    if param is not None:
        param.set_value(paddle.full(param.shape, value, param.dtype))


def _init_weighted(layer: nn.Layer, init_type: str, init_gain: float) -> None:
    if init_type == "normal":
        _fill_normal(layer.weight, 0.0, init_gain)
        _fill_constant(layer.bias, 0.0)
    elif init_type == "kaiming":
        _fill_uniform(layer.weight, math.sqrt(6.0 / fan_in(layer)))
        _fill_constant(layer.bias, 0.0)
    else:  # pytorch: the bias is drawn too, with the same bound
        bound = 1.0 / math.sqrt(fan_in(layer))
        _fill_uniform(layer.weight, bound)
        _fill_uniform(layer.bias, bound)


def _init_batch_norm(layer: nn.Layer, init_type: str, init_gain: float) -> None:
    if init_type == "pytorch":
        _fill_constant(layer.weight, 1.0)
    else:  # both PaddleGAN schemes
        _fill_normal(layer.weight, 1.0, init_gain)
    _fill_constant(layer.bias, 0.0)


@paddle.no_grad()
def init_weights(net: nn.Layer, init_type: str, init_gain: float = 0.02) -> None:
    """Re-initialise the conv, linear and BatchNorm layers of `net` by scheme `init_type`.

    `init_gain` is the standard deviation of PaddleGAN's normal draws (unused by "pytorch").
    """
    if init_type not in INIT_TYPES:
        raise ValueError(f"init_type must be one of {', '.join(INIT_TYPES)}, got {init_type!r}")
    if init_type == "paddle":
        return
    for layer in net.sublayers(include_self=True):
        if isinstance(layer, WEIGHTED_LAYERS):
            _init_weighted(layer, init_type, init_gain)
        elif isinstance(layer, BATCH_NORMS):
            _init_batch_norm(layer, init_type, init_gain)
    logger.debug("%s initialised: init_type %s, init_gain %g", type(net).__name__, init_type,
                 init_gain)
