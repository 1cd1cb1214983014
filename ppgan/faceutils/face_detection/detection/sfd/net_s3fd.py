"""The S3FD network: a VGG16 trunk with six detection heads (conf/loc pairs at strides 4..128).

Parameter names match the PyTorch face_alignment port and PaddleGAN's `s3fd_paddle.pdparams`, so
released weights load as they are (conv weights are (out, in, kh, kw) in both frameworks).
"""
import copy
from typing import Dict, List, Tuple

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.static import InputSpec

# (name, in, out, kernel, stride, padding) of the trunk, in forward order. fc6 keeps the
# reference's kernel 3 / padding 3 (no dilation), which grows its map by 4 on each axis.
TRUNK: Tuple[Tuple[str, int, int, int, int, int], ...] = (
    ("conv1_1", 3, 64, 3, 1, 1), ("conv1_2", 64, 64, 3, 1, 1),
    ("conv2_1", 64, 128, 3, 1, 1), ("conv2_2", 128, 128, 3, 1, 1),
    ("conv3_1", 128, 256, 3, 1, 1), ("conv3_2", 256, 256, 3, 1, 1), ("conv3_3", 256, 256, 3, 1, 1),
    ("conv4_1", 256, 512, 3, 1, 1), ("conv4_2", 512, 512, 3, 1, 1), ("conv4_3", 512, 512, 3, 1, 1),
    ("conv5_1", 512, 512, 3, 1, 1), ("conv5_2", 512, 512, 3, 1, 1), ("conv5_3", 512, 512, 3, 1, 1),
    ("fc6", 512, 1024, 3, 1, 3), ("fc7", 1024, 1024, 1, 1, 0),
    ("conv6_1", 1024, 256, 1, 1, 0), ("conv6_2", 256, 512, 3, 2, 1),
    ("conv7_1", 512, 128, 1, 1, 0), ("conv7_2", 128, 256, 3, 2, 1),
)
# Trunk layers followed by a 2x2 max-pool.
POOL_AFTER = frozenset({"conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"})
# (head prefix, feature it reads, its channels, conf outputs): six levels, strides 4..128.
# The stride-4 level predicts 3 background logits + 1 face logit (max-out background).
HEADS: Tuple[Tuple[str, str, int, int], ...] = (
    ("conv3_3_norm", "conv3_3", 256, 4), ("conv4_3_norm", "conv4_3", 512, 2),
    ("conv5_3_norm", "conv5_3", 512, 2), ("fc7", "fc7", 1024, 2),
    ("conv6_2", "conv6_2", 512, 2), ("conv7_2", "conv7_2", 256, 2),
)
# Caffe's BGR channel means, subtracted from RGB frames: a quirk of the reference kept on purpose,
# since the released weights were used (and Wav2Lip's results obtained) that way.
PIXEL_MEAN = np.array([104, 117, 123], dtype=np.float32)
IMAGE_SPEC = InputSpec([None, 3, None, None], "float32", "image")  # any batch, any frame size

# L2Norm layers (name, channels, initial scale): the low-level features have much larger norms
# than the deep ones, so they are normalised before their heads.
NORMS: Tuple[Tuple[str, int, float], ...] = (
    ("conv3_3_norm", 256, 10.0), ("conv4_3_norm", 512, 8.0), ("conv5_3_norm", 512, 5.0))


def network_input(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB frames -> S3FD's (N, 3, H, W) float32 input."""
    return np.ascontiguousarray((images.astype(np.float32) - PIXEL_MEAN).transpose(0, 3, 1, 2))


class L2Norm(nn.Layer):
    """Scales each pixel's channel vector to unit L2 norm, then by a learned per-channel weight."""

    def __init__(self, channels: int, scale: float = 1.0, eps: float = 1e-10):
        super().__init__()
        self.eps = eps
        self.weight = self.create_parameter(
            shape=[channels], default_initializer=nn.initializer.Constant(scale))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        # eps added after the sqrt, as the reference does, so results match it bit for bit.
        norm = x.pow(2).sum(axis=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.reshape([1, -1, 1, 1])


class _TraceableL2Norm(L2Norm):
    """L2Norm in operators Paddle 3.3.1 traces into a legacy program, which int8 quantisation
    reads (its legacy tracing fails on `sum`, `sqrt` and `maximum`): the channels' sum of
    squares as a 1x1 transposed convolution with a kernel of ones, which quantisation leaves in
    fp32 (as a plain convolution it would go to int8, where most squares round to zero), and the
    root as a power of 0.5. Equal within float rounding."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        ones = paddle.ones([x.shape[1], 1, 1, 1], x.dtype)
        norm = paddle.pow(F.conv2d_transpose(x * x, ones), 0.5) + self.eps
        return x / norm * self.weight.reshape([1, -1, 1, 1])


def max_out_background(conf: paddle.Tensor) -> paddle.Tensor:
    """(N,4,H,W) -> (N,2,H,W): the max of the 3 background logits, then the face logit.

    S3FD's answer to the many small anchors at stride 4, which are mostly background.
    """
    background = paddle.maximum(paddle.maximum(conf[:, 0:1], conf[:, 1:2]), conf[:, 2:3])
    return paddle.concat([background, conf[:, 3:4]], axis=1)


class S3FD(nn.Layer):
    """Single Shot Scale-invariant Face Detector.

    Input (N,3,H,W) float32, mean-subtracted pixels. Output: 12 maps, [conf, loc] for each of
    the 6 levels (strides 4, 8, 16, 32, 64, 128); conf maps are (N,2,h,w) logits
    [background, face], loc maps (N,4,h,w) offsets (dx, dy, dw, dh).
    """

    def __init__(self):
        super().__init__()
        for name, cin, cout, kernel, stride, padding in TRUNK:
            setattr(self, name, nn.Conv2D(cin, cout, kernel, stride=stride, padding=padding))
        for name, channels, scale in NORMS:
            setattr(self, name, L2Norm(channels, scale))
        for prefix, _, channels, conf_out in HEADS:
            setattr(self, f"{prefix}_mbox_conf", nn.Conv2D(channels, conf_out, 3, padding=1))
            setattr(self, f"{prefix}_mbox_loc", nn.Conv2D(channels, 4, 3, padding=1))

    def _trunk(self, x: paddle.Tensor) -> Dict[str, paddle.Tensor]:
        """Runs the VGG trunk, returning the ReLU output of every layer a head reads."""
        wanted = {feature for _, feature, _, _ in HEADS}
        features = {}
        for spec in TRUNK:  # not `for name, *_ in`: paddle.jit.to_static cannot convert that
            name = spec[0]
            x = F.relu(getattr(self, name)(x))
            if name in wanted:
                features[name] = x
            if name in POOL_AFTER:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
        return features

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        outputs = self.heads(x)
        outputs[0] = max_out_background(outputs[0])
        return outputs

    def heads(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        """The 12 maps before the stride-4 level's max-out: its conf map has 4 logits (3
        background, then face)."""
        features = self._trunk(x)
        for spec in NORMS:
            name = spec[0]
            source = name[: -len("_norm")]
            features[source] = getattr(self, name)(features[source])
        outputs: List[paddle.Tensor] = []
        for spec in HEADS:
            prefix, feature = spec[0], spec[1]
            outputs += [getattr(self, f"{prefix}_mbox_conf")(features[feature]),
                        getattr(self, f"{prefix}_mbox_loc")(features[feature])]
        return outputs


def legacy_traceable(net: S3FD) -> S3FD:
    """A copy of `net` whose `heads` Paddle 3.3.1 can trace into a legacy program (which int8
    quantisation needs): its L2Norms are `_TraceableL2Norm`s with the same weights. Its legacy
    tracing also fails on `maximum`, so the max-out is left to the caller (`heads`)."""
    copied = copy.deepcopy(net)
    for name, channels, _ in NORMS:
        norm = getattr(net, name)
        traceable = _TraceableL2Norm(channels, eps=norm.eps)
        traceable.weight.set_value(norm.weight)
        setattr(copied, name, traceable)
    return copied

